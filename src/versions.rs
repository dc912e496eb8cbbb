//! OMS CE versions, the supported upgrade paths, and which procedure each path uses.
//!
//! The table of supported paths is OMS CE's own (from each version's FAQ, restated in
//! `shared/docs/oms-upgrade-brief.md`). The *procedure* is chosen by the target version's
//! upgrade guide: 3.3.0's guide has no HA step and no `IS_UPGRADE`; 3.3.1's adds both;
//! 4.2.x's adds a `supervisorctl status` check before `docker_init.sh` and an "all machines
//! Online" check after it. The brief lists no differences for 4.0.0 and 4.1.0, so those
//! follow the 3.3.1 guide. Anything not in the table is refused at planning time with the
//! list of supported paths and, when one exists, a chain of supported hops.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// An OMS CE release number, `major.minor.patch` (the `-CE` suffix and tag decorations
/// such as `feature_3.3.1_ce` are accepted by [`Version::parse_loose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major number.
    pub major: u16,
    /// Minor number.
    pub minor: u16,
    /// Patch number.
    pub patch: u16,
}

impl Version {
    /// A version from its three numbers.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Finds the first `N.N.N` inside a string such as an image tag
    /// (`reg/oceanbase/oms:feature_3.3.1_ce`, `3.3.1-CE`, `v4.2.2`). Returns `None` when
    /// there is none, so callers can ask the operator instead of guessing.
    pub fn parse_loose(s: &str) -> Option<Version> {
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit()) {
                let rest = &s[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .unwrap_or(rest.len());
                let parts: Vec<&str> = rest[..end].split('.').collect();
                if parts.len() >= 3
                    && let (Ok(a), Ok(b), Ok(c)) = (
                        parts[0].parse::<u16>(),
                        parts[1].parse::<u16>(),
                        parts[2].parse::<u16>(),
                    )
                {
                    return Some(Version::new(a, b, c));
                }
                i += end.max(1);
            } else {
                i += 1;
            }
        }
        None
    }
}

/// The tag of an image reference: what follows the last `:` after the last `/`, with any
/// digest (`@sha256:...`) removed first. A `:` before the last `/` is a registry port
/// (`10.0.0.1:5000/oms:3.3.0`), never a tag. `None` when the reference has no tag
/// (`oms@sha256:...`, `oms`).
pub fn image_tag(reference: &str) -> Option<&str> {
    let name = reference.split('@').next().unwrap_or("");
    let last = name.rsplit('/').next().unwrap_or(name);
    let (_, tag) = last.split_once(':')?;
    (!tag.is_empty()).then_some(tag)
}

/// The image label that names a version: the OCI image spec's pre-defined annotation key,
/// which image builders also set as a label. OMS's public record names no label of its own.
pub const VERSION_LABEL: &str = "org.opencontainers.image.version";

/// What an image says about its version: its reference's tag and its version label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImageVersion {
    /// From the reference's tag ([`Version::from_image_ref`]).
    pub tag: Option<Version>,
    /// From the image's [`VERSION_LABEL`] label.
    pub label: Option<Version>,
}

impl ImageVersion {
    /// Reads both sources.
    pub fn read(reference: &str, labels: &std::collections::BTreeMap<String, String>) -> Self {
        ImageVersion {
            tag: Version::from_image_ref(reference),
            label: labels
                .get(VERSION_LABEL)
                .and_then(|v| Version::parse_loose(v)),
        }
    }

    /// The version both sources agree on (or the one present). `Err` when they disagree
    /// (the caller asks the operator), `Ok(None)` when neither names one.
    pub fn agreed(&self) -> Result<Option<Version>, (Version, Version)> {
        match (self.tag, self.label) {
            (Some(t), Some(l)) if t != l => Err((t, l)),
            (t, l) => Ok(t.or(l)),
        }
    }

    /// A line for the record: `tag 3.3.0, label 3.3.0` (`none` where a source is silent).
    pub fn describe(&self) -> String {
        let s = |v: Option<Version>| v.map_or_else(|| "none".to_string(), |v| v.to_string());
        format!("tag {}, label {}", s(self.tag), s(self.label))
    }
}

impl Version {
    /// The version an image reference names in its tag (see [`image_tag`]), e.g.
    /// `10.0.0.1:5000/oms:feature_3.3.0_ce` -> 3.3.0. Numbers in the registry host, its
    /// port or the repository path never count.
    pub fn from_image_ref(reference: &str) -> Option<Version> {
        image_tag(reference).and_then(Version::parse_loose)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Shown as `"3.3.1"` in JSON views.
impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A version string that is not `N.N.N` (optionally with a `-CE` suffix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an OMS CE version; write it as MAJOR.MINOR.PATCH, e.g. 3.3.1")]
pub struct BadVersion(pub String);

impl FromStr for Version {
    type Err = BadVersion;

    /// Strict form: `3.3.1`, `3.3.1-CE`, `3.3.1-ce` or `v3.3.1`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let t = t
            .strip_suffix("-CE")
            .or_else(|| t.strip_suffix("-ce"))
            .unwrap_or(t);
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() != 3 {
            return Err(BadVersion(s.to_string()));
        }
        let n = |p: &str| p.parse::<u16>().map_err(|_| BadVersion(s.to_string()));
        Ok(Version::new(n(parts[0])?, n(parts[1])?, n(parts[2])?))
    }
}

/// Which upgrade guide a path follows; decides the steps (see the module docs).
///
/// Stored in `run.planned` by its index: new variants are appended, never reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcedureId {
    /// The 3.3.0 guide (from 3.2.2): no HA step, no `IS_UPGRADE`.
    Guide330,
    /// The 3.3.1 guide (also used for 4.0.0 and 4.1.0): HA off/on around the upgrade,
    /// `IS_UPGRADE=true` on the new container.
    Guide331,
    /// The 4.2.x guide: as 3.3.1, plus `supervisorctl status` all RUNNING before
    /// `docker_init.sh` and all machines Online after it.
    Guide42x,
}

impl ProcedureId {
    /// HA is disabled before the stop and re-enabled (with the refetch rule) at the end.
    pub fn has_ha_steps(self) -> bool {
        !matches!(self, ProcedureId::Guide330)
    }

    /// The new container gets `IS_UPGRADE=true` (mandatory for upgrades since 3.3.1).
    pub fn sets_is_upgrade(self) -> bool {
        !matches!(self, ProcedureId::Guide330)
    }

    /// `supervisorctl status` must show every program RUNNING before `docker_init.sh`.
    pub fn checks_supervisor(self) -> bool {
        matches!(self, ProcedureId::Guide42x)
    }

    /// After `docker_init.sh` and health, every machine must be Online.
    pub fn checks_online(self) -> bool {
        matches!(self, ProcedureId::Guide42x)
    }

    /// Stable name used in output, e.g. `guide-3.3.1`.
    pub fn name(self) -> &'static str {
        match self {
            ProcedureId::Guide330 => "guide-3.3.0",
            ProcedureId::Guide331 => "guide-3.3.1",
            ProcedureId::Guide42x => "guide-4.2.x",
        }
    }
}

/// Shown as its [`ProcedureId::name`] in JSON views.
impl Serialize for ProcedureId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl fmt::Display for ProcedureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which sources a target accepts: one version or an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sources {
    /// Exactly this version.
    Exact(Version),
    /// Every version from `from` to `to`, both included.
    Range {
        /// Lowest accepted source.
        from: Version,
        /// Highest accepted source.
        to: Version,
    },
}

impl Sources {
    /// True when `v` is an accepted source.
    pub fn contains(&self, v: Version) -> bool {
        match *self {
            Sources::Exact(x) => x == v,
            Sources::Range { from, to } => from <= v && v <= to,
        }
    }
}

impl fmt::Display for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sources::Exact(v) => write!(f, "{v}"),
            Sources::Range { from, to } => write!(f, "{from}..={to}"),
        }
    }
}

/// One row of the supported-path table: a target, the sources it accepts, its guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SupportedPath {
    /// The version upgraded to.
    pub target: Version,
    /// The versions it can be upgraded from.
    pub sources: Sources,
    /// The guide the upgrade follows.
    pub procedure: ProcedureId,
}

impl fmt::Display for SupportedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} ({})",
            self.sources, self.target, self.procedure
        )
    }
}

const fn v(major: u16, minor: u16, patch: u16) -> Version {
    Version::new(major, minor, patch)
}

const fn exact(target: Version, source: Version, procedure: ProcedureId) -> SupportedPath {
    SupportedPath {
        target,
        sources: Sources::Exact(source),
        procedure,
    }
}

const fn range(target: Version, from: Version, to: Version, p: ProcedureId) -> SupportedPath {
    SupportedPath {
        target,
        sources: Sources::Range { from, to },
        procedure: p,
    }
}

use ProcedureId::{Guide42x, Guide330, Guide331};

/// The supported paths, per OMS CE's FAQ. 4.1.1 has no upgrade path (fresh deploy only),
/// so it appears only as a source.
const PATHS: &[SupportedPath] = &[
    exact(v(3, 3, 0), v(3, 2, 2), Guide330),
    exact(v(3, 3, 1), v(3, 3, 0), Guide331),
    exact(v(4, 0, 0), v(3, 2, 2), Guide331),
    exact(v(4, 0, 0), v(3, 3, 0), Guide331),
    exact(v(4, 0, 0), v(3, 3, 1), Guide331),
    range(v(4, 1, 0), v(3, 2, 2), v(4, 0, 0), Guide331),
    exact(v(4, 2, 0), v(4, 1, 1), Guide42x),
    exact(v(4, 2, 1), v(4, 2, 0), Guide42x),
    exact(v(4, 2, 2), v(4, 2, 1), Guide42x),
    exact(v(4, 2, 6), v(4, 2, 5), Guide42x),
    range(v(4, 2, 9), v(4, 2, 0), v(4, 2, 8), Guide42x),
];

/// The supported-path table (see the module docs); `oms-simulate --path all` runs each.
pub fn supported_paths() -> &'static [SupportedPath] {
    PATHS
}

/// The procedure chosen for one upgrade: the path and its guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Procedure {
    /// The running version.
    pub source: Version,
    /// The version upgraded to.
    pub target: Version,
    /// The guide followed.
    pub id: ProcedureId,
}

/// A source/target pair that OMS CE does not support upgrading directly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "upgrading OMS CE {from} -> {to} is not a supported path{}; supported paths: {}",
    chain_hint(.chain),
    .supported.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ")
)]
pub struct UnsupportedPath {
    /// The running version.
    pub from: Version,
    /// The requested target.
    pub to: Version,
    /// Every supported path, so the operator can pick one.
    pub supported: Vec<SupportedPath>,
    /// A shortest chain of supported hops from source to target (source first, target
    /// last), when one exists through versions named in the table.
    pub chain: Option<Vec<Version>>,
}

fn chain_hint(chain: &Option<Vec<Version>>) -> String {
    match chain {
        Some(c) => format!(
            " (upgrade in hops instead: {})",
            c.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" -> ")
        ),
        None => String::new(),
    }
}

/// Chooses the procedure for `source -> target`, or refuses with the supported paths.
pub fn procedure_for(source: Version, target: Version) -> Result<Procedure, UnsupportedPath> {
    match PATHS
        .iter()
        .find(|p| p.target == target && p.sources.contains(source))
    {
        Some(p) => Ok(Procedure {
            source,
            target,
            id: p.procedure,
        }),
        None => Err(UnsupportedPath {
            from: source,
            to: target,
            supported: PATHS.to_vec(),
            chain: shortest_chain(source, target),
        }),
    }
}

/// Breadth-first search over the versions named in the table.
fn shortest_chain(source: Version, target: Version) -> Option<Vec<Version>> {
    if source == target {
        return None;
    }
    let mut known: BTreeSet<Version> = BTreeSet::new();
    for p in PATHS {
        known.insert(p.target);
        if let Sources::Exact(s) = p.sources {
            known.insert(s);
        }
    }
    known.insert(source);
    let mut prev: std::collections::BTreeMap<Version, Version> = Default::default();
    let mut queue = VecDeque::from([source]);
    while let Some(at) = queue.pop_front() {
        for p in PATHS.iter().filter(|p| p.sources.contains(at)) {
            let next = p.target;
            if next == source || prev.contains_key(&next) || !known.contains(&next) {
                continue;
            }
            prev.insert(next, at);
            if next == target {
                let mut chain = vec![target];
                let mut cur = target;
                while let Some(&p) = prev.get(&cur) {
                    chain.push(p);
                    cur = p;
                }
                chain.reverse();
                return (chain.len() > 2).then_some(chain);
            }
            queue.push_back(next);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn runbook_path_uses_the_331_guide() {
        let proc = procedure_for(p("3.3.0"), p("3.3.1")).unwrap();
        assert_eq!(proc.id, ProcedureId::Guide331);
        assert!(proc.id.has_ha_steps() && proc.id.sets_is_upgrade());
        assert!(!proc.id.checks_supervisor());
    }

    #[test]
    fn guide_330_has_no_ha_and_no_is_upgrade() {
        let proc = procedure_for(p("3.2.2"), p("3.3.0")).unwrap();
        assert_eq!(proc.id, ProcedureId::Guide330);
        assert!(!proc.id.has_ha_steps() && !proc.id.sets_is_upgrade());
    }

    #[test]
    fn guide_42x_checks_supervisor_and_online() {
        for (s, t) in [("4.2.1", "4.2.2"), ("4.1.1", "4.2.0"), ("4.2.3", "4.2.9")] {
            let proc = procedure_for(p(s), p(t)).unwrap();
            assert_eq!(proc.id, ProcedureId::Guide42x, "{s}->{t}");
            assert!(proc.id.checks_supervisor() && proc.id.checks_online());
            assert!(proc.id.sets_is_upgrade() && proc.id.has_ha_steps());
        }
    }

    #[test]
    fn every_row_of_the_brief_is_supported() {
        let ok = [
            ("3.2.2", "3.3.0"),
            ("3.3.0", "3.3.1"),
            ("3.2.2", "4.0.0"),
            ("3.3.0", "4.0.0"),
            ("3.3.1", "4.0.0"),
            ("3.2.2", "4.1.0"),
            ("3.3.1", "4.1.0"),
            ("4.0.0", "4.1.0"),
            ("4.1.1", "4.2.0"),
            ("4.2.0", "4.2.1"),
            ("4.2.1", "4.2.2"),
            ("4.2.5", "4.2.6"),
            ("4.2.0", "4.2.9"),
            ("4.2.8", "4.2.9"),
        ];
        for (s, t) in ok {
            assert!(procedure_for(p(s), p(t)).is_ok(), "{s} -> {t}");
        }
    }

    #[test]
    fn unsupported_paths_are_refused_with_the_table() {
        for (s, t) in [
            ("3.2.2", "3.3.1"),
            ("4.1.0", "4.1.1"),
            ("4.2.1", "4.2.3"),
            ("3.3.1", "3.3.0"),
            ("3.3.0", "3.3.0"),
            ("4.2.9", "4.2.9"),
        ] {
            let err = procedure_for(p(s), p(t)).unwrap_err();
            assert_eq!(err.supported.len(), PATHS.len());
            let msg = err.to_string();
            assert!(msg.contains("3.3.0 -> 3.3.1 (guide-3.3.1)"), "{msg}");
            assert!(msg.contains(&format!("{s} -> {t} is not a supported path")));
        }
    }

    #[test]
    fn refusal_suggests_hops_when_they_exist() {
        let err = procedure_for(p("3.2.2"), p("3.3.1")).unwrap_err();
        assert_eq!(err.chain, Some(vec![p("3.2.2"), p("3.3.0"), p("3.3.1")]));
        assert!(err.to_string().contains("3.2.2 -> 3.3.0 -> 3.3.1"));
        let back = procedure_for(p("3.3.1"), p("3.3.0")).unwrap_err();
        assert_eq!(back.chain, None);
        let far = procedure_for(p("4.1.1"), p("4.2.2")).unwrap_err();
        assert_eq!(
            far.chain,
            Some(vec![p("4.1.1"), p("4.2.0"), p("4.2.1"), p("4.2.2")])
        );
    }

    #[test]
    fn parses_strict_and_loose_forms() {
        assert_eq!(p("3.3.1-CE"), Version::new(3, 3, 1));
        assert_eq!(p("v4.2.2"), Version::new(4, 2, 2));
        assert!("3.3".parse::<Version>().is_err());
        assert!("3.3.x".parse::<Version>().is_err());
        assert!(
            "3.3.1.1"
                .parse::<Version>()
                .unwrap_err()
                .to_string()
                .contains("MAJOR.MINOR.PATCH")
        );
        assert_eq!(
            Version::parse_loose("reg.docker.alibaba-inc.com/oceanbase/oms:feature_3.3.1_ce"),
            Some(Version::new(3, 3, 1))
        );
        assert_eq!(
            Version::parse_loose("oms-emu:4.2.2-CE"),
            Some(Version::new(4, 2, 2))
        );
        assert_eq!(Version::parse_loose("oms:latest"), None);
        assert_eq!(
            Version::parse_loose("x1.2y3.4.5"),
            Some(Version::new(3, 4, 5))
        );
    }

    #[test]
    fn image_references_name_the_version_in_their_tag_only() {
        let cases: &[(&str, Option<Version>)] = &[
            (
                "10.0.0.1:5000/oms:feature_3.3.0_ce",
                Some(Version::new(3, 3, 0)),
            ),
            (
                "10.0.0.1:5000/oceanbase/oms:feature_4.2.2_ce",
                Some(Version::new(4, 2, 2)),
            ),
            (
                "registry.local:5000/oms:3.3.1-CE",
                Some(Version::new(3, 3, 1)),
            ),
            ("[fd00::1]:5000/oms:4.2.1", Some(Version::new(4, 2, 1))),
            (
                "reg.docker.alibaba-inc.com/oceanbase/oms:feature_3.3.1_ce",
                Some(Version::new(3, 3, 1)),
            ),
            ("oms:feature_3.3.0_ce", Some(Version::new(3, 3, 0))),
            ("oms-emu:4.2.2-CE", Some(Version::new(4, 2, 2))),
            // A digest pins the bytes; the tag before it still names the version.
            (
                "10.0.0.1:5000/oms:feature_3.3.0_ce@sha256:4e2b7a1c9d0f3e5a6b8c7d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c",
                Some(Version::new(3, 3, 0)),
            ),
            // No tag: no version, whatever numbers the host, port, path or digest hold.
            ("10.0.0.1:5000/oms", None),
            (
                "10.0.0.1:5000/oms@sha256:1111111111111111111111111111111111111111111111111111111111111111",
                None,
            ),
            ("oms.1.2.3/oms:latest", None),
            ("3.3.1/oms", None),
            ("oms", None),
            ("", None),
        ];
        for (r, want) in cases {
            assert_eq!(Version::from_image_ref(r), *want, "{r}");
        }
        assert_eq!(
            image_tag("10.0.0.1:5000/oms:feature_3.3.0_ce"),
            Some("feature_3.3.0_ce")
        );
        assert_eq!(image_tag("10.0.0.1:5000/oms"), None);
        assert_eq!(image_tag("oms:t@sha256:ab"), Some("t"));
        assert_eq!(image_tag("oms:"), None);
    }

    #[test]
    fn labels_and_tags_agree_or_the_operator_is_asked() {
        let labels = |v: &str| {
            std::collections::BTreeMap::from([(VERSION_LABEL.to_string(), v.to_string())])
        };
        let none = std::collections::BTreeMap::new();
        let both = ImageVersion::read("10.0.0.1:5000/oms:feature_3.3.0_ce", &labels("3.3.0-CE"));
        assert_eq!(both.agreed(), Ok(Some(p("3.3.0"))));
        let label_only = ImageVersion::read("10.0.0.1:5000/oms:latest", &labels("4.2.2"));
        assert_eq!(label_only.agreed(), Ok(Some(p("4.2.2"))));
        assert_eq!(label_only.describe(), "tag none, label 4.2.2");
        let differ = ImageVersion::read("oms:feature_3.3.1_ce", &labels("3.3.0"));
        assert_eq!(differ.agreed(), Err((p("3.3.1"), p("3.3.0"))));
        let silent = ImageVersion::read("10.0.0.1:5000/oms@sha256:ab", &none);
        assert_eq!(silent.agreed(), Ok(None));
    }

    #[test]
    fn versions_order_numerically() {
        assert!(p("4.10.0") > p("4.2.9"));
        assert!(
            Sources::Range {
                from: p("3.2.2"),
                to: p("4.0.0")
            }
            .contains(p("3.3.1"))
        );
    }
}
