//! Which build this is (issue 17): the version, the git commit and the build date, set by
//! `build.rs`. `--version` prints [`LONG_VERSION`] and `init` records it as the plan's
//! `tool_version`, so a report says exactly which build acted.

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit built (12 hex digits), or what `OMS_UPGRADE_GIT_COMMIT` said, or
/// `unknown`.
pub const COMMIT: &str = env!("OMS_UPGRADE_COMMIT");
/// The UTC day of the build (`SOURCE_DATE_EPOCH`'s when set), `YYYY-MM-DD`.
pub const BUILD_DATE: &str = env!("OMS_UPGRADE_BUILD_DATE");
/// `0.1.0 (commit 0123456789ab, built 2026-11-28)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("OMS_UPGRADE_COMMIT"),
    ", built ",
    env!("OMS_UPGRADE_BUILD_DATE"),
    ")"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_version_names_version_commit_and_date() {
        assert!(LONG_VERSION.starts_with(VERSION));
        assert!(LONG_VERSION.contains(&format!("commit {COMMIT}")));
        let d: Vec<&str> = BUILD_DATE.split('-').collect();
        assert_eq!(d.len(), 3, "{BUILD_DATE}");
        assert_eq!(d[0].len(), 4);
        assert!(d.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())));
        assert!(!COMMIT.is_empty());
    }
}
