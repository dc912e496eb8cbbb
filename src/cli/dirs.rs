//! Where the ledger and the dumps go by default: `/var/lib/oms-upgrade` for root, the XDG
//! state folder for anyone else (who cannot create folders under `/var/lib`).
//!
//! [`default_dirs`] is a pure function of the real uid and the environment, so it is
//! tested without either; [`here`] feeds it this process's.

use std::path::PathBuf;

/// The default folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultDirs {
    /// The ledger folder.
    pub ledger: PathBuf,
    /// The folder the dumps go under.
    pub backups: PathBuf,
}

/// Root's folder for both.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/oms-upgrade";

/// The defaults for real uid `uid`, with `env` looking up environment variables.
pub fn default_dirs(uid: u32, env: impl Fn(&str) -> Option<String>) -> DefaultDirs {
    let absolute = |k: &str| env(k).map(PathBuf::from).filter(|p| p.is_absolute());
    let base = if uid == 0 {
        PathBuf::from(SYSTEM_STATE_DIR)
    } else if let Some(state) = absolute("XDG_STATE_HOME") {
        state.join("oms-upgrade")
    } else if let Some(home) = absolute("HOME") {
        home.join(".local/state/oms-upgrade")
    } else {
        PathBuf::from(SYSTEM_STATE_DIR)
    };
    DefaultDirs {
        ledger: base.join("ledger"),
        backups: base.join("backups"),
    }
}

/// [`default_dirs`] for this process.
pub fn here() -> DefaultDirs {
    // SAFETY: getuid cannot fail and has no preconditions.
    let uid = unsafe { libc::getuid() };
    default_dirs(uid, |k| std::env::var(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn root_keeps_var_lib() {
        let d = default_dirs(0, env(&[("HOME", "/root"), ("XDG_STATE_HOME", "/x")]));
        assert_eq!(d.ledger, PathBuf::from("/var/lib/oms-upgrade/ledger"));
        assert_eq!(d.backups, PathBuf::from("/var/lib/oms-upgrade/backups"));
    }

    #[test]
    fn others_use_the_xdg_state_folder() {
        let d = default_dirs(1000, env(&[("HOME", "/home/alice")]));
        assert_eq!(
            d.ledger,
            PathBuf::from("/home/alice/.local/state/oms-upgrade/ledger")
        );
        assert_eq!(
            d.backups,
            PathBuf::from("/home/alice/.local/state/oms-upgrade/backups")
        );
        let d = default_dirs(
            1000,
            env(&[("HOME", "/home/alice"), ("XDG_STATE_HOME", "/srv/state")]),
        );
        assert_eq!(d.ledger, PathBuf::from("/srv/state/oms-upgrade/ledger"));
        // The XDG spec: a relative or empty XDG_STATE_HOME is invalid and ignored.
        for bad in ["relative/state", ""] {
            let d = default_dirs(
                1000,
                env(&[("HOME", "/home/alice"), ("XDG_STATE_HOME", bad)]),
            );
            assert_eq!(
                d.ledger,
                PathBuf::from("/home/alice/.local/state/oms-upgrade/ledger"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn others_without_a_home_keep_var_lib() {
        // Nothing better to offer: the folder check then says what is wrong.
        for vars in [&[][..], &[("HOME", "relative")][..]] {
            let d = default_dirs(1000, env(vars));
            assert_eq!(d.ledger, PathBuf::from("/var/lib/oms-upgrade/ledger"));
        }
    }
}
