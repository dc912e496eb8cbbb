//! A container's environment as recorded: what `run.planned` keeps of the old container's
//! variables (and of its log options), with secrets withheld or masked. Below both the
//! plan and its extensions, which record such lists.

use std::fmt;

use serde::Serialize;

/// An environment variable of a container as recorded: values of keys that look secret
/// are withheld, and secrets inside other values are masked ([`crate::redact`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Its value with any secret inside masked (`mysql://u:***@h`), or `None` when
    /// withheld because the name looks secret (see [`looks_secret`]).
    pub value: Option<String>,
}

impl EnvVar {
    /// Records `name=value`: withheld when the name looks secret, masked otherwise.
    pub fn recorded(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.to_string(),
            value: crate::redact::env_value(name, value),
        }
    }
}

impl fmt::Display for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={}", self.name, v),
            None => write!(f, "{}=***", self.name),
        }
    }
}

pub use crate::redact::looks_secret;

/// Records a `docker inspect` env list (`NAME=value` strings), withholding secrets.
pub fn record_env<S: AsRef<str>>(env: &[S]) -> Vec<EnvVar> {
    env.iter()
        .map(|kv| {
            let kv = kv.as_ref();
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            EnvVar::recorded(k, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 10): secrets were recognised by the variable's name only, so a
    /// password inside a URL or a JVM option went into the plan as it was.
    #[test]
    fn recorded_env_masks_secret_values_under_plain_names() {
        let env = record_env(&[
            "DB_URL=mysql://oms:pw-in-url@10.0.0.9:3306/oms",
            "JAVA_OPTS=-Xmx2g -Dpassword=pw-in-opts -Duser.timezone=UTC",
            "OMS_HOST_IP=10.0.0.5",
            "OMS_META_PASSWORD=pw-by-name",
        ]);
        let shown: Vec<String> = env.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            [
                "DB_URL=mysql://oms:***@10.0.0.9:3306/oms",
                "JAVA_OPTS=-Xmx2g -Dpassword=*** -Duser.timezone=UTC",
                "OMS_HOST_IP=10.0.0.5",
                "OMS_META_PASSWORD=***",
            ]
        );
        let stored = format!("{env:?}");
        for pw in ["pw-in-url", "pw-in-opts", "pw-by-name"] {
            assert!(!stored.contains(pw), "{pw} recorded: {stored}");
        }
    }
}
