//! What the new container inherits from the old one (issue 12, items 3 and 4): recording
//! the old container's deployment choices at `init` ([`record`]), reading them back from
//! a container Docker reports ([`observed`]), and comparing two such records field by field
//! ([`differences`]), for the create step's check, `plan` and `ledger verify --live`.
//!
//! Pure: it works on what the Docker adapter reported and on recorded settings. Secrets
//! stay out of every recorded or printed form ([`EnvVar::recorded`] withholds or masks
//! them); the create step alone handles raw values, taken from the old container itself.
//! `docs/inheritance.md` says which setting is carried over and why.

use crate::adapters::docker::{
    ContainerInfo, HostSettings, RestartPolicySetting, env_lookup, user_env,
};
use crate::events::{ContainerSettings, EnvVar, Plan, RestartPolicy, Ulimit, record_env};
use crate::steps::{self, Step};

/// The recorded form of a Docker restart policy (`""` becomes `no`; the retry count is
/// kept only where it means something, `on-failure`).
pub fn restart_of(r: &RestartPolicySetting) -> RestartPolicy {
    let r = r.normalised();
    RestartPolicy {
        max_retries: if r.name == "on-failure" {
            r.max_retries
        } else {
            0
        },
        name: r.name,
    }
}

/// Docker's form of a recorded restart policy.
pub fn setting_of(r: &RestartPolicy) -> RestartPolicySetting {
    RestartPolicySetting {
        name: r.name.clone(),
        max_retries: r.max_retries,
    }
}

/// True when two policies mean the same (`""` and `no` alike).
pub fn same_policy(a: &RestartPolicy, b: &RestartPolicy) -> bool {
    a.to_string() == b.to_string()
}

/// The old container's settings as `init` records them: the env the operator set (its
/// `Config.Env` minus what `image_env`, its image's own, gave unchanged) and the host
/// settings, secrets withheld.
pub fn record(info: &ContainerInfo, image_env: &[String]) -> ContainerSettings {
    with_env(info, record_env(&user_env(&info.env, image_env)))
}

/// The settings `info` shows for the fields of `expected`: the env is read for
/// `expected`'s names only (a container also carries its image's env, which is not
/// compared), an unset one showing as `(unset)`.
pub fn observed(expected: &ContainerSettings, info: &ContainerInfo) -> ContainerSettings {
    let env = expected
        .env
        .iter()
        .map(|e| match env_lookup(&info.env, &e.name) {
            Some(v) => EnvVar::recorded(&e.name, v),
            None => EnvVar {
                name: e.name.clone(),
                value: Some(UNSET.into()),
            },
        })
        .collect();
    with_env(info, env)
}

/// How an env var a container lacks is shown.
const UNSET: &str = "(unset)";

fn with_env(info: &ContainerInfo, env: Vec<EnvVar>) -> ContainerSettings {
    let h: &HostSettings = &info.host;
    ContainerSettings {
        restart: restart_of(&h.restart),
        network_mode: info.network_mode.clone(),
        env,
        ulimits: info.ulimits.clone(),
        log_driver: h.log_driver.clone(),
        log_opts: h
            .log_opts
            .iter()
            .map(|(k, v)| EnvVar::recorded(k, v))
            .collect(),
        extra_hosts: h.extra_hosts.clone(),
        devices: h.devices.clone(),
        cap_add: h.cap_add.clone(),
        cap_drop: h.cap_drop.clone(),
        dns: h.dns.clone(),
        dns_search: h.dns_search.clone(),
        dns_options: h.dns_options.clone(),
        shm_size: h.shm_size,
        tmpfs: h.tmpfs.clone(),
        security_opt: h.security_opt.clone(),
    }
}

/// One setting's value in a printable, secret-free form.
fn fields(s: &ContainerSettings) -> Vec<(&'static str, String)> {
    let list = |v: &[String]| v.join(", ");
    let mut ulimits: Vec<String> = s
        .ulimits
        .iter()
        .map(|u| format!("{}={}:{}", u.name, u.soft, u.hard))
        .collect();
    ulimits.sort();
    let env: Vec<String> = s.env.iter().map(|e| e.to_string()).collect();
    let log_opts: Vec<String> = s.log_opts.iter().map(|e| e.to_string()).collect();
    vec![
        ("restart", s.restart.to_string()),
        ("network", s.network_mode.clone()),
        ("env", list(&env)),
        ("ulimits", list(&ulimits)),
        ("log-driver", s.log_driver.clone()),
        ("log-opts", list(&log_opts)),
        ("extra-hosts", list(&s.extra_hosts)),
        ("devices", list(&s.devices)),
        ("cap-add", list(&s.cap_add)),
        ("cap-drop", list(&s.cap_drop)),
        ("dns", list(&s.dns)),
        ("dns-search", list(&s.dns_search)),
        ("dns-options", list(&s.dns_options)),
        (
            "shm-size",
            s.shm_size.map(|n| n.to_string()).unwrap_or_default(),
        ),
        (
            "tmpfs",
            s.tmpfs
                .iter()
                .map(|(p, o)| format!("{p}:{o}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("security-opt", list(&s.security_opt)),
    ]
}

/// One setting that differs: its name and both values (secret-free).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    /// The setting (`restart`, `env`, `ulimits`, ...).
    pub field: &'static str,
    /// Its value in the first record.
    pub left: String,
    /// Its value in the second.
    pub right: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &str| {
            if v.is_empty() {
                "(none)".to_string()
            } else {
                v.to_string()
            }
        };
        write!(
            f,
            "{}: {} -> {}",
            self.field,
            show(&self.left),
            show(&self.right)
        )
    }
}

/// The settings that differ between `a` and `b`, field by field, in a fixed order.
pub fn differences(a: &ContainerSettings, b: &ContainerSettings) -> Vec<Difference> {
    fields(a)
        .into_iter()
        .zip(fields(b))
        .filter(|((_, x), (_, y))| x != y)
        .map(|((field, left), (_, right))| Difference { field, left, right })
        .collect()
}

/// What the new container is meant to show, in the recorded form: `inherited` with the
/// runbook's env (`runbook_env`, replacing the old values) and `restart`, `network_mode`
/// and `ulimits` as the create step sets them.
pub fn intended(
    inherited: &ContainerSettings,
    runbook_env: &[(String, String)],
    restart: &RestartPolicy,
    network_mode: &str,
    ulimits: &[Ulimit],
) -> ContainerSettings {
    let mut env: Vec<EnvVar> = inherited
        .env
        .iter()
        .filter(|e| !runbook_env.iter().any(|(k, _)| *k == e.name))
        .cloned()
        .collect();
    env.extend(runbook_env.iter().map(|(k, v)| EnvVar::recorded(k, v)));
    ContainerSettings {
        restart: restart.clone(),
        network_mode: network_mode.to_string(),
        env,
        ulimits: ulimits.to_vec(),
        ..inherited.clone()
    }
}

/// How the new container of `plan` differs from the old one, setting by setting, secrets
/// masked: the image, then every recorded setting that differs (the runbook's env and
/// `nproc` ulimit, typically), and the names of the settings inherited unchanged. `None`
/// for plans that did not record the old container's settings.
pub fn plan_changes(plan: &Plan) -> Option<(Vec<Difference>, Vec<&'static str>)> {
    let recorded = plan.container_settings()?;
    let Ok(Step::CreateNewContainer(spec)) = steps::build(
        plan,
        crate::events::StepKey::CreateNewContainer,
        &steps::Context::default(),
    ) else {
        return None;
    };
    let new = intended(
        recorded,
        &spec.env,
        &spec.restart,
        &spec.network_mode,
        &spec.ulimits,
    );
    let mut changes = vec![Difference {
        field: "image",
        left: plan.old_container.image.clone(),
        right: plan.target_image.clone(),
    }];
    let diffs = differences(recorded, &new);
    let unchanged = fields(recorded)
        .into_iter()
        .filter(|(f, v)| !v.is_empty() && !diffs.iter().any(|d| d.field == *f))
        .map(|(f, _)| f)
        .collect();
    changes.extend(diffs);
    let added: Vec<&String> = spec
        .labels
        .keys()
        .filter(|k| !plan.old_container.labels.contains_key(*k))
        .collect();
    if !added.is_empty() {
        changes.push(Difference {
            field: "labels",
            left: String::new(),
            right: format!(
                "+ {}",
                added
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Some((changes, unchanged))
}

/// The raw values the create step gives the new container, taken from the old one after
/// checking that everything comparable is as recorded at `init`.
#[derive(Debug, Clone)]
pub struct Live {
    /// `NAME=value` of each inherited env var, secrets included.
    pub env: Vec<String>,
    /// The old container's host settings, secrets included.
    pub host: HostSettings,
}

/// The inherited values read from `old` (the old container as Docker shows it now), or the
/// differences from what `recorded` says. The restart policy is not compared: the run
/// itself set it to `no` (`old-restart-off`).
pub fn live(
    recorded: &ContainerSettings,
    names: &[&EnvVar],
    old: &ContainerInfo,
) -> Result<Live, Vec<Difference>> {
    let mut now = observed(recorded, old);
    now.restart = recorded.restart.clone();
    let diffs = differences(recorded, &now);
    if !diffs.is_empty() {
        return Err(diffs);
    }
    let env = names
        .iter()
        .filter_map(|e| env_lookup(&old.env, &e.name).map(|v| format!("{}={v}", e.name)))
        .collect();
    Ok(Live {
        env,
        host: old.host.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::docker::{ContainerStatus, Ulimit};
    use std::collections::BTreeMap;

    fn info() -> ContainerInfo {
        ContainerInfo {
            id: "old".into(),
            name: "oms".into(),
            image: "oms:3.3.0".into(),
            image_id: "sha256:1".into(),
            status: ContainerStatus::Running,
            created: None,
            started_at: None,
            finished_at: None,
            binds: vec![],
            env: vec![
                "PATH=/usr/bin".into(),
                "OMS_HOST_IP=10.0.0.5".into(),
                "OMS_META_PASSWORD=hunter2".into(),
                "TZ=UTC".into(),
            ],
            labels: BTreeMap::new(),
            network_mode: "host".into(),
            privileged: false,
            pids_limit: None,
            ulimits: vec![Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 4096,
            }],
            cmd: None,
            tty: true,
            open_stdin: true,
            host: HostSettings {
                restart: RestartPolicySetting {
                    name: "unless-stopped".into(),
                    max_retries: 0,
                },
                log_driver: "json-file".into(),
                log_opts: BTreeMap::from([
                    ("max-size".to_string(), "10m".to_string()),
                    ("splunk-token".to_string(), "tok-secret".to_string()),
                ]),
                extra_hosts: vec!["meta.local:10.0.0.9".into()],
                ..Default::default()
            },
        }
    }

    #[test]
    fn record_keeps_the_operators_env_and_withholds_secrets() {
        let s = record(&info(), &["PATH=/usr/bin".to_string()]);
        let shown: Vec<String> = s.env.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            ["OMS_HOST_IP=10.0.0.5", "OMS_META_PASSWORD=***", "TZ=UTC"]
        );
        assert_eq!(s.restart.to_string(), "unless-stopped");
        let stored = format!("{s:?}");
        assert!(!stored.contains("hunter2") && !stored.contains("tok-secret"));
    }

    #[test]
    fn live_takes_withheld_values_from_the_old_container_after_checking_the_rest() {
        let rec = record(&info(), &["PATH=/usr/bin".to_string()]);
        let names: Vec<&EnvVar> = rec.env.iter().filter(|e| e.name != "OMS_HOST_IP").collect();
        let mut old = info();
        old.host.restart = RestartPolicySetting::no();
        let l = live(&rec, &names, &old).unwrap();
        assert_eq!(l.env, ["OMS_META_PASSWORD=hunter2", "TZ=UTC"]);
        assert_eq!(l.host.log_opts["splunk-token"], "tok-secret");
        old.host.extra_hosts.clear();
        let d = live(&rec, &names, &old).unwrap_err();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "extra-hosts");
        assert_eq!(
            d[0].to_string(),
            "extra-hosts: meta.local:10.0.0.9 -> (none)"
        );
    }

    #[test]
    fn intended_replaces_the_runbook_env_only() {
        let rec = record(&info(), &["PATH=/usr/bin".to_string()]);
        let want = intended(
            &rec,
            &[
                ("OMS_HOST_IP".into(), "10.0.0.6".into()),
                ("IS_UPGRADE".into(), "true".into()),
            ],
            &rec.restart,
            "host",
            &rec.ulimits,
        );
        let d = differences(&rec, &want);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].field, "env");
        assert!(
            d[0].right.contains("IS_UPGRADE=true") && d[0].right.contains("OMS_META_PASSWORD=***")
        );
        assert!(!d[0].right.contains("10.0.0.5"));
    }

    #[test]
    fn policies_compare_by_meaning() {
        let a = restart_of(&RestartPolicySetting {
            name: String::new(),
            max_retries: 3,
        });
        assert!(same_policy(&a, &RestartPolicy::no()));
        let f = restart_of(&RestartPolicySetting {
            name: "on-failure".into(),
            max_retries: 3,
        });
        assert_eq!(f.to_string(), "on-failure:3");
        assert_eq!(setting_of(&f).max_retries, 3);
    }
}
