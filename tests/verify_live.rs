//! `ledger verify --live` and `--artifacts` against a real (emulated) OMS node upgraded by
//! the binary in the real Docker engine with the real MariaDB: no drift right after the
//! run; then, one at a time, a deleted dump, an altered dump, HA switched off behind the
//! tool's back, and the new container recreated with one bind changed are each reported
//! field by field with exit code 3. Also: the signed checkpoint `run`/`rollback` write when
//! a key is configured, the rollback's end state (old container, source schema version),
//! and the exit codes for an unfinished run (7) and an unreachable Docker engine (6).

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptionsBuilder;
use mysql_async::prelude::Queryable;
use support::emulator as emu;
use support::upgrade::{Run, json_of, show};

/// `ledger verify` with `args`, run to its end (any exit code).
async fn verify(run: &Run, args: &[&str]) -> Output {
    let mut c = run.cli();
    c.args(["ledger", "verify"]).args(args);
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

/// `ledger verify --live --json`: (exit code, JSON).
async fn live(run: &Run) -> (i32, serde_json::Value) {
    let out = verify(run, &["--live", "--json"]).await;
    (out.status.code().unwrap(), json_of(&out.stdout))
}

/// The drifts of a `--live --json` result as (subject, field, recorded, found).
fn drifts(v: &serde_json::Value) -> Vec<(String, String, String, String)> {
    v["live"]["drifts"]
        .as_array()
        .unwrap_or_else(|| panic!("no live.drifts in {v}"))
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap().to_string();
            (s("subject"), s("field"), s("recorded"), s("found"))
        })
        .collect()
}

/// (subject, status) of every subject checked.
fn subjects(v: &serde_json::Value) -> Vec<(String, String)> {
    v["live"]["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["subject"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Asserts a clean `--live`: exit 0, every subject ok (schema included: the emulator has
/// its schema-version table), nothing drifted.
async fn assert_no_drift(run: &Run, container: &str) {
    let (code, v) = live(run).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(drifts(&v), vec![], "{v}");
    let want: Vec<(String, String)> = [
        format!("container {container}"),
        "ha.config".into(),
        "schema".into(),
        "dump rm".into(),
        "dump cm".into(),
        "dump cm_hb".into(),
    ]
    .into_iter()
    // After a completed upgrade the renamed old container's restart policy is checked
    // too (it must stay `no`, issue 12.3).
    .chain(
        (v["live"]["phase"] == "completed")
            .then(|| format!("container {container}-pre-3.3.1 (old)")),
    )
    .map(|s| (s, "ok".to_string()))
    .collect();
    assert_eq!(subjects(&v), want, "{v}");
}

/// `ha.config` as stored, as text.
async fn ha_text(run: &Run) -> String {
    emu::scalar_text(&format!(
        "select cfg_value from `{}`.oms_normal_config where cfg_name='ha.config'",
        run.node.databases().rm
    ))
    .await
    .expect("ha.config row")
}

/// Stores `value` as `ha.config`, as an operator editing the row would.
async fn set_ha(run: &Run, value: &str) {
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    c.exec_drop(
        format!(
            "UPDATE `{}`.oms_normal_config SET cfg_value = ? WHERE cfg_name = 'ha.config'",
            run.node.databases().rm
        ),
        (value,),
    )
    .await
    .unwrap();
    drop(c);
    pool.disconnect().await.ok();
}

/// Stops and removes the container `name`, then creates and starts a container with the
/// same name and the same configuration except that the bind mounting `target` comes from
/// `new_host`. Returns the new container's id.
async fn recreate_with_bind(run: &Run, name: &str, target: &str, new_host: &Path) -> String {
    let docker = &run.node.docker;
    let old = docker
        .inspect_container(
            name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .unwrap();
    let config = old.config.unwrap();
    let mut host_config = old.host_config.unwrap();
    let binds: Vec<String> = host_config
        .binds
        .take()
        .unwrap()
        .into_iter()
        .map(|b| {
            let mut parts = b.splitn(3, ':');
            let (_host, cpath) = (parts.next().unwrap(), parts.next().unwrap());
            if cpath == target {
                let rest = parts.next().map(|o| format!(":{o}")).unwrap_or_default();
                format!("{}:{cpath}{rest}", new_host.display())
            } else {
                b
            }
        })
        .collect();
    assert!(
        binds
            .iter()
            .any(|b| b.starts_with(&new_host.display().to_string())),
        "no bind mounts {target}: {binds:?}"
    );
    host_config.binds = Some(binds);
    emu::stop_container(docker, name, 10).await;
    docker
        .remove_container(
            name,
            None::<bollard::query_parameters::RemoveContainerOptions>,
        )
        .await
        .unwrap();
    let body = ContainerCreateBody {
        image: config.image,
        env: config.env,
        cmd: config.cmd,
        entrypoint: config.entrypoint,
        working_dir: config.working_dir,
        user: config.user,
        labels: config.labels,
        tty: config.tty,
        open_stdin: config.open_stdin,
        host_config: Some(host_config),
        ..Default::default()
    };
    let id = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(name).build()),
            body,
        )
        .await
        .unwrap()
        .id;
    emu::start_container(docker, &id).await;
    id
}

/// The run's own folder (ledger, backups, and here keys and checkpoints).
fn folder(run: &Run) -> PathBuf {
    run.ledger().parent().unwrap().to_path_buf()
}

fn keygen(run: &Run, key: &Path) -> String {
    let out = run
        .cli()
        .args(["--json", "ledger", "keygen", "--out"])
        .arg(key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    json_of(&out.stdout)["public_key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The checkpoint `run`/`rollback` wrote next to the ledger verifies with `public`, and
/// covers the ledger's last record.
fn assert_signed_checkpoint_covers_head(run: &Run, public: &str) -> PathBuf {
    let cp = folder(run).join("ledger.checkpoint");
    let text = std::fs::read_to_string(&cp)
        .unwrap_or_else(|e| panic!("no signed checkpoint at {}: {e}", cp.display()));
    assert!(text.starts_with("oms-upgrade-checkpoint v2\n"), "{text}");
    let last = run.replay().1.last_seq().unwrap();
    assert!(text.contains(&format!("\nseq: {last}\n")), "{text}");
    let out = run
        .cli()
        .args(["--json", "ledger", "verify", "--anchor"])
        .arg(&cp)
        .args(["--pubkey", public])
        .output()
        .unwrap();
    let v = json_of(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["signature"]["verified"], true, "{v}");
    cp
}

#[tokio::test(flavor = "multi_thread")]
async fn live_detects_a_deleted_dump_ha_disabled_and_a_container_recreated_with_one_bind_changed() {
    let run = Run::planned().await;
    let key = folder(&run).join("ops.key");
    let public = keygen(&run, &key);
    let out = run
        .ok(&["run", "--yes", "--sign", key.to_str().unwrap()])
        .await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signed checkpoint of seq"),
        "{}",
        show(&out)
    );
    assert_signed_checkpoint_covers_head(&run, &public);
    let name = run.node.name.clone();

    // Right after the upgrade: nothing drifted; the text form says so.
    assert_no_drift(&run, &name).await;
    let out = verify(&run, &["--live"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("live:      after a completed upgrade: no drift"),
        "{text}"
    );
    let (_, state) = run.replay();
    let new = state.new_container().unwrap().clone();
    assert!(
        new.env.iter().any(|e| e.to_string() == "IS_UPGRADE=true"),
        "the recorded env that --live compares has IS_UPGRADE: {:?}",
        new.env
    );

    // (c) A dump file deleted: --artifacts and --live both report it, and nothing else.
    let rm_dump = PathBuf::from(
        &state
            .artifact(oms_upgrade::events::MetaDb::Rm)
            .unwrap()
            .file,
    );
    let aside = rm_dump.with_extension("aside");
    std::fs::rename(&rm_dump, &aside).unwrap();
    let out = verify(&run, &["--artifacts", "--json"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let v = json_of(&out.stdout);
    assert_eq!(v["chain_ok"], true, "{v}");
    assert_eq!(
        (&v["artifacts"]["missing"], &v["artifacts"]["altered"]),
        (&1.into(), &0.into()),
        "{v}"
    );
    assert_eq!(v["artifacts"]["files"][0]["state"], "missing", "{v}");
    let (code, v) = live(&run).await;
    assert_eq!(code, 3, "{v}");
    let d = drifts(&v);
    assert_eq!(d.len(), 1, "{v}");
    assert_eq!((d[0].0.as_str(), d[0].1.as_str()), ("dump rm", "file"));
    assert!(d[0].3.starts_with("missing: "), "{d:?}");
    std::fs::rename(&aside, &rm_dump).unwrap();

    // An altered dump: --artifacts shows the expected and the found BLAKE3.
    let original = std::fs::read(&rm_dump).unwrap();
    let mut altered = original.clone();
    altered.extend_from_slice(b"-- appended\n");
    std::fs::write(&rm_dump, &altered).unwrap();
    let out = verify(&run, &["--artifacts"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let found = blake3::hash(&altered).to_hex().to_string();
    let expected = blake3::hash(&original).to_hex().to_string();
    assert!(
        text.contains("ALTERED")
            && text.contains(&format!("found    {} bytes, blake3 {found}", altered.len()))
            && text.contains(&format!(
                "expected {} bytes, blake3 {expected}",
                original.len()
            )),
        "{text}"
    );
    std::fs::write(&rm_dump, &original).unwrap();
    assert_no_drift(&run, &name).await;

    // (b) HA switched off after the run, behind the tool's back.
    let ha = ha_text(&run).await;
    let mut off: serde_json::Value = serde_json::from_str(&ha).unwrap();
    assert_eq!(off["enable"], true, "{ha}");
    off["enable"] = false.into();
    set_ha(&run, &off.to_string()).await;
    let (code, v) = live(&run).await;
    assert_eq!(code, 3, "{v}");
    assert_eq!(
        drifts(&v),
        vec![(
            "ha.config".to_string(),
            "enable".to_string(),
            "true".to_string(),
            "false".to_string()
        )],
        "{v}"
    );
    set_ha(&run, &ha).await;
    assert_no_drift(&run, &name).await;

    // (a) The new container recreated with the same settings but one bind changed.
    let elsewhere = folder(&run).join("other-store");
    std::fs::create_dir(&elsewhere).unwrap();
    let recorded_store = new
        .binds
        .iter()
        .find(|b| b.contains(&format!(":{}", emu::CONTAINER_STORE)))
        .unwrap()
        .clone();
    let id = recreate_with_bind(&run, &name, emu::CONTAINER_STORE, &elsewhere).await;
    let (code, v) = live(&run).await;
    assert_eq!(code, 3, "{v}");
    let subject = format!("container {name}");
    assert_eq!(
        drifts(&v),
        vec![
            (subject.clone(), "id".into(), new.id.clone(), id.clone()),
            (
                subject,
                format!("bind {}", emu::CONTAINER_STORE),
                recorded_store,
                format!("{}:{}", elsewhere.display(), emu::CONTAINER_STORE)
            ),
        ],
        "{v}"
    );
    let out = verify(&run, &["--live"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(
        text.contains("drift:") && text.contains(&format!("bind {}", emu::CONTAINER_STORE)),
        "{text}"
    );

    // Docker unreachable: exit 6 with a hint, nothing compared.
    let mut c = run.cli();
    c.env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["ledger", "verify", "--live"]);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hint: "),
        "{}",
        show(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn live_after_a_rollback_compares_the_old_container_and_the_source_schema() {
    let run = Run::planned().await;
    // Planned but not finished: there is no end state to compare with.
    let out = verify(&run, &["--live"]).await;
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("only a completed upgrade or a completed rollback"),
        "{}",
        show(&out)
    );

    let key = folder(&run).join("ops.key");
    let public = keygen(&run, &key);
    run.ok(&["run", "--yes"]).await;
    assert!(
        !folder(&run).join("ledger.checkpoint").exists(),
        "no key configured, no checkpoint"
    );
    // With a key configured, a ledger that records steps must have a signed checkpoint
    // beside it: the rollback refuses until the operator signs the ledger as it stands.
    let out = run
        .cli()
        .env("OMS_UPGRADE_SIGNING_KEY", &key)
        .args(["rollback", "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no signed checkpoint"),
        "{}",
        show(&out)
    );
    let out = run
        .cli()
        .args(["ledger", "checkpoint", "--sign"])
        .arg(&key)
        .arg("--out")
        .arg(folder(&run).join("ledger.checkpoint"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let mut c = run.cli();
    c.env("OMS_UPGRADE_SIGNING_KEY", &key)
        .args(["rollback", "--yes"]);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_signed_checkpoint_covers_head(&run, &public);

    let name = run.node.name.clone();
    assert_no_drift(&run, &name).await;
    let (_, v) = live(&run).await;
    assert_eq!(v["live"]["phase"], "rolled_back", "{v}");

    // The schema moved to another version behind the tool's back.
    let rm = run.node.databases().rm;
    let before = emu::schema_version(&run.node.databases()).await.unwrap();
    assert_eq!(before, emu::OLD_VERSION);
    let pool = support::mysql_pool().await;
    let mut c = pool.get_conn().await.unwrap();
    c.query_drop(format!(
        "UPDATE `{rm}`.oms_schema_version SET version = '{}' WHERE id = 1",
        emu::NEW_VERSION
    ))
    .await
    .unwrap();
    let (code, v) = live(&run).await;
    assert_eq!(code, 3, "{v}");
    assert_eq!(
        drifts(&v),
        vec![(
            "schema".to_string(),
            "version".to_string(),
            emu::OLD_VERSION.to_string(),
            emu::NEW_VERSION.to_string()
        )],
        "{v}"
    );
    // Real OMS keeps no such table: the schema is then "not checked", not a drift.
    c.query_drop(format!("DROP TABLE `{rm}`.oms_schema_version"))
        .await
        .unwrap();
    drop(c);
    pool.disconnect().await.ok();
    let (code, v) = live(&run).await;
    assert_eq!(code, 0, "{v}");
    assert!(
        subjects(&v).contains(&("schema".to_string(), "not_checked".to_string())),
        "{v}"
    );
}
