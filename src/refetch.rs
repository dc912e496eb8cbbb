//! The `refetchStoreIntervalMin` rule: how far back HA restarts the Store after a downtime.
//!
//! While OMS is down (from T1, the old container stopped, to T2, HA re-enabled) the Store
//! does not pull. HA restarts it at "earliest downstream checkpoint minus
//! `refetchStoreIntervalMin`", so the interval must exceed T2 - T1 (the runbook; the
//! official FAQ example: stopped 4:00, done 5:00, use 90). The rule here:
//!
//! ```text
//! downtime = ceil((T2 - T1) in minutes)                 (0 when T2 <= T1)
//! margin   = max(ceil(downtime * margin_percent / 100), margin_min_minutes)
//! interval = downtime + margin                          (default: half again, at least 30)
//! ```
//!
//! so the FAQ's hour gives 60 + 30 = 90. The interval must exceed the downtime, so the
//! smallest margin is at least one minute ([`RefetchPolicy::check`], applied when the plan
//! is made, before anything is written). Alternatively, by option, HA is told to
//! `perceiveStoreClientCheckpoint=true`, and then T1/T2 do not matter and
//! `refetchStoreIntervalMin` is set to its default, [`DEFAULT_INTERVAL_MIN`] (the runbook:
//! "如果您设置 `perceiveStoreClientCheckpoint` 为 `true`，则 `refetchStoreIntervalMin` 保持默认值即可",
//! keep the default). Either way the decision is recorded with its inputs and reasoning.
//!
//! In manual HA mode the operator types the value into the console: any value at least the
//! computed one is accepted ([`RefetchDecision::operator_set`]) and the decision then
//! records what the operator set.
//!
//! Stores keep 24 h of data for sync projects and 120 h for migration projects: a refetch
//! window longer than that cannot be served. The decision warns when the downtime reaches
//! `warn_percent` (default 80) of the retention, and says so loudly when it is past it.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// `refetchStoreIntervalMin`'s default in OMS (`ha.config` defaults; the brief), which the
/// runbook says to keep when `perceiveStoreClientCheckpoint` is true.
pub const DEFAULT_INTERVAL_MIN: u64 = 30;

/// How the Store restart point is chosen after HA is re-enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefetchMode {
    /// Write `refetchStoreIntervalMin` from the downtime and the margin rule.
    Interval,
    /// Write `perceiveStoreClientCheckpoint=true` and keep the interval as it is.
    PerceiveCheckpoint,
}

/// Which kind of project the Store serves: sets its retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreRetention {
    /// Incremental sync projects: 24 h (the shorter, so the safe default).
    Sync,
    /// Migration projects: 120 h.
    Migration,
}

impl StoreRetention {
    /// Retention in hours.
    pub fn hours(self) -> u64 {
        match self {
            StoreRetention::Sync => 24,
            StoreRetention::Migration => 120,
        }
    }
}

/// The refetch policy of a run (part of the plan). See the module docs for the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct RefetchPolicy {
    /// Interval rule or perceive-checkpoint.
    pub mode: RefetchMode,
    /// Margin as a percentage of the downtime (default 50: "half again").
    pub margin_percent: u32,
    /// Smallest margin in minutes (default 30).
    pub margin_min_minutes: u32,
    /// Store retention the warnings are measured against (default sync, 24 h).
    pub retention: StoreRetention,
    /// Warn when the downtime reaches this percentage of the retention (default 80).
    pub warn_percent: u32,
}

impl RefetchPolicy {
    /// Checks that the rule always gives an interval longer than the downtime, as the
    /// runbook requires: with no smallest margin, a downtime of 0 minutes (or, with
    /// `margin_percent` 0, any downtime) gives an interval equal to it, which the run would
    /// find only when re-enabling HA, after the upgrade changed everything. The problem
    /// names the command-line flags that set the fields.
    pub fn check(&self) -> Result<(), String> {
        if self.mode == RefetchMode::Interval && self.margin_min_minutes == 0 {
            return Err(format!(
                "--refetch-margin-min 0 (with --refetch-margin-percent {}) can give a                  refetchStoreIntervalMin equal to the downtime, and the runbook needs it larger:                  pass --refetch-margin-min 1 or more (default 30)",
                self.margin_percent
            ));
        }
        if self.warn_percent == 0 || self.warn_percent > 100 {
            return Err(format!(
                "the retention warning threshold {}% must be between 1 and 100",
                self.warn_percent
            ));
        }
        Ok(())
    }
}

impl Default for RefetchPolicy {
    fn default() -> Self {
        RefetchPolicy {
            mode: RefetchMode::Interval,
            margin_percent: 50,
            margin_min_minutes: 30,
            retention: StoreRetention::Sync,
            warn_percent: 80,
        }
    }
}

/// How close the downtime is to what the Store can still serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionRisk {
    /// Well inside the retention.
    None,
    /// At or above `warn_percent` of the retention.
    Near,
    /// The downtime (or the interval written) exceeds the retention: data older than the
    /// retention cannot be refetched.
    Beyond,
}

/// What was decided for `refetchStoreIntervalMin` / `perceiveStoreClientCheckpoint`,
/// with every input, so a report can show how the value was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefetchDecision {
    /// The policy applied.
    pub policy: RefetchPolicy,
    /// Start of the downtime (old container stopped).
    pub t1: DateTime<Utc>,
    /// End of the downtime (HA re-enabled).
    pub t2: DateTime<Utc>,
    /// ceil((t2 - t1) in minutes); 0 when t2 <= t1.
    pub downtime_minutes: u64,
    /// The margin added (0 in perceive mode).
    pub margin_minutes: u64,
    /// `refetchStoreIntervalMin` to write: from the rule in interval mode, the default
    /// ([`DEFAULT_INTERVAL_MIN`]) in perceive mode, or what the operator set in manual HA
    /// mode (at least the rule's value). `None` in perceive mode in ledgers of earlier
    /// builds, which kept the stored value.
    pub interval_minutes: Option<u64>,
    /// `perceiveStoreClientCheckpoint` to write; `None` in interval mode (kept as it is).
    pub perceive_checkpoint: Option<bool>,
    /// Distance to the Store retention.
    pub risk: RetentionRisk,
    /// Human explanation: the arithmetic and any warning.
    pub reasoning: String,
    /// The warning alone, when there is one (also inside `reasoning`).
    pub warning: Option<String>,
}

impl RefetchDecision {
    /// True when the written interval covers a downtime from `t1` to `t2` (e.g. a later
    /// observed T2 in manual HA mode, where the operator enables HA after the value was
    /// computed). Perceive mode covers any downtime.
    pub fn covers(&self, t1: DateTime<Utc>, t2: DateTime<Utc>) -> bool {
        if self.perceive_checkpoint == Some(true) {
            return true;
        }
        self.interval_minutes
            .is_some_and(|i| i > downtime_minutes(t1, t2))
    }

    /// The decision after the operator set `refetchStoreIntervalMin` to `set` by hand
    /// (manual HA mode), when `set` is at least the value decided: the value written is
    /// theirs, and the reasoning and retention warning say so. `None` when `set` is
    /// smaller than the decided value (not accepted), or in perceive mode, where the
    /// default is asked for exactly.
    pub fn operator_set(&self, set: u64) -> Option<RefetchDecision> {
        let wanted = self.interval_minutes?;
        if self.perceive_checkpoint.is_some() || set < wanted {
            return None;
        }
        if set == wanted {
            return Some(self.clone());
        }
        let mut d = decide(&self.policy, self.t1, self.t2);
        d.interval_minutes = Some(set);
        let (risk, warning) = retention_risk(&self.policy, d.downtime_minutes, Some(set));
        d.risk = risk;
        d.warning = warning;
        d.reasoning = format!(
            "{}; the operator set refetchStoreIntervalMin = {set} min in the console (at least \
             the {wanted} min computed)",
            self.reasoning
                .split("; WARNING: ")
                .next()
                .unwrap_or(&self.reasoning)
        );
        if let Some(w) = &d.warning {
            d.reasoning.push_str("; WARNING: ");
            d.reasoning.push_str(w);
        }
        Some(d)
    }
}

/// One line on the Store retention the policy measures against, for `plan`: how long the
/// downtime may last before the warning, and the retention itself.
pub fn retention_note(policy: &RefetchPolicy) -> String {
    let retention_min = policy.retention.hours() * 60;
    let warn = retention_min.saturating_mul(u64::from(policy.warn_percent)) / 100;
    format!(
        "Store retention: {} h ({:?} projects); a downtime (T1 to T2) of {} min or more is \
         warned about, and past the retention the refetch window cannot be served",
        policy.retention.hours(),
        policy.retention,
        warn
    )
}

/// ceil((t2 - t1) in minutes), 0 when t2 <= t1 (a clock that went back).
pub fn downtime_minutes(t1: DateTime<Utc>, t2: DateTime<Utc>) -> u64 {
    let micros = (t2 - t1).num_microseconds().unwrap_or(i64::MAX);
    if micros <= 0 {
        return 0;
    }
    (micros as u64).div_ceil(60_000_000)
}

/// The margin for a downtime of `downtime` minutes under `policy`.
pub fn margin_minutes(policy: &RefetchPolicy, downtime: u64) -> u64 {
    let proportional = (downtime.saturating_mul(u64::from(policy.margin_percent))).div_ceil(100);
    proportional.max(u64::from(policy.margin_min_minutes))
}

/// Decides the refetch settings for a downtime from `t1` to `t2`. Pure.
pub fn decide(policy: &RefetchPolicy, t1: DateTime<Utc>, t2: DateTime<Utc>) -> RefetchDecision {
    let downtime = downtime_minutes(t1, t2);
    let (margin, interval, perceive) = match policy.mode {
        RefetchMode::Interval => {
            let m = margin_minutes(policy, downtime);
            (m, Some(downtime.saturating_add(m)), None)
        }
        RefetchMode::PerceiveCheckpoint => (0, Some(DEFAULT_INTERVAL_MIN), Some(true)),
    };
    let mut reasoning = match policy.mode {
        RefetchMode::Interval => format!(
            "T1 {} to T2 {}: downtime {} min (rounded up); margin max({}% of it, {} min) = {} min; \
             refetchStoreIntervalMin = {} + {} = {} min",
            t1.to_rfc3339(),
            t2.to_rfc3339(),
            downtime,
            policy.margin_percent,
            policy.margin_min_minutes,
            margin,
            downtime,
            margin,
            downtime + margin
        ),
        RefetchMode::PerceiveCheckpoint => format!(
            "perceiveStoreClientCheckpoint = true by option: HA restarts the Store from the \
             downstream checkpoints, so T1/T2 do not set the interval (downtime was {downtime} min); \
             refetchStoreIntervalMin = {DEFAULT_INTERVAL_MIN} min, its default, as the runbook says"
        ),
    };
    if t2 < t1 {
        reasoning.push_str("; T2 is before T1 (clock went back?), downtime taken as 0");
    }
    // In perceive mode HA restarts from the checkpoints: the default interval written
    // is no refetch window, so only the downtime is measured against the retention.
    let window = interval.filter(|_| perceive.is_none());
    let (risk, warning) = retention_risk(policy, downtime, window);
    if let Some(w) = &warning {
        reasoning.push_str("; WARNING: ");
        reasoning.push_str(w);
    }
    RefetchDecision {
        policy: *policy,
        t1,
        t2,
        downtime_minutes: downtime,
        margin_minutes: margin,
        interval_minutes: interval,
        perceive_checkpoint: perceive,
        risk,
        reasoning,
        warning,
    }
}

/// How close a downtime of `downtime` minutes, and a refetch window of `window` minutes,
/// come to what the Store keeps, with the warning to show.
fn retention_risk(
    policy: &RefetchPolicy,
    downtime: u64,
    window: Option<u64>,
) -> (RetentionRisk, Option<String>) {
    let retention_min = policy.retention.hours() * 60;
    let warn_threshold = retention_min.saturating_mul(u64::from(policy.warn_percent)) / 100;
    if downtime >= retention_min {
        (
            RetentionRisk::Beyond,
            Some(format!(
                "DOWNTIME {downtime} min EXCEEDS the Store retention of {} h ({:?} projects): data \
                 older than the retention cannot be refetched; check every project for gaps",
                policy.retention.hours(),
                policy.retention
            )),
        )
    } else if window.is_some_and(|i| i > retention_min) {
        (
            RetentionRisk::Beyond,
            Some(format!(
                "the refetch window of {} min is longer than the Store retention of {} h ({:?} \
                 projects): the part beyond the retention cannot be served",
                window.unwrap_or_default(),
                policy.retention.hours(),
                policy.retention
            )),
        )
    } else if downtime >= warn_threshold {
        (
            RetentionRisk::Near,
            Some(format!(
                "downtime {downtime} min is at least {}% of the Store retention of {} h ({:?} \
                 projects): past the retention the refetch window cannot be served",
                policy.warn_percent,
                policy.retention.hours(),
                policy.retention
            )),
        )
    } else {
        (RetentionRisk::None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, h, m, s).unwrap()
    }

    #[test]
    fn faq_example_gives_90() {
        let d = decide(&RefetchPolicy::default(), at(4, 0, 0), at(5, 0, 0));
        assert_eq!(d.downtime_minutes, 60);
        assert_eq!(d.margin_minutes, 30);
        assert_eq!(d.interval_minutes, Some(90));
        assert_eq!(d.perceive_checkpoint, None);
        assert_eq!(d.risk, RetentionRisk::None);
        assert!(d.reasoning.contains("60 + 30 = 90"), "{}", d.reasoning);
    }

    #[test]
    fn short_downtime_gets_the_minimum_margin_and_rounds_up() {
        let d = decide(&RefetchPolicy::default(), at(4, 0, 0), at(4, 3, 1));
        assert_eq!(d.downtime_minutes, 4);
        assert_eq!(d.interval_minutes, Some(34));
    }

    #[test]
    fn long_downtime_gets_half_again() {
        let d = decide(&RefetchPolicy::default(), at(1, 0, 0), at(4, 1, 0));
        assert_eq!(d.downtime_minutes, 181);
        assert_eq!(d.margin_minutes, 91);
        assert_eq!(d.interval_minutes, Some(272));
    }

    #[test]
    fn margin_is_configurable() {
        let p = RefetchPolicy {
            margin_percent: 100,
            margin_min_minutes: 5,
            ..Default::default()
        };
        let d = decide(&p, at(4, 0, 0), at(4, 2, 0));
        assert_eq!(d.interval_minutes, Some(2 + 5));
        let d = decide(&p, at(4, 0, 0), at(5, 0, 0));
        assert_eq!(d.interval_minutes, Some(120));
    }

    /// Perceive mode writes the default interval (the runbook: keep the default), which is
    /// no refetch window: it covers any downtime and is not measured against the retention.
    #[test]
    fn perceive_mode_sets_the_default_interval() {
        let p = RefetchPolicy {
            mode: RefetchMode::PerceiveCheckpoint,
            ..Default::default()
        };
        let d = decide(&p, at(4, 0, 0), at(5, 0, 0));
        assert_eq!(d.interval_minutes, Some(DEFAULT_INTERVAL_MIN));
        assert_eq!(d.risk, RetentionRisk::None);
        assert_eq!(d.perceive_checkpoint, Some(true));
        assert!(d.covers(at(0, 0, 0), at(23, 0, 0)));
        assert!(d.reasoning.contains("perceiveStoreClientCheckpoint = true"));
    }

    #[test]
    fn clock_going_back_counts_as_zero() {
        let d = decide(&RefetchPolicy::default(), at(5, 0, 0), at(4, 0, 0));
        assert_eq!(d.downtime_minutes, 0);
        assert_eq!(d.interval_minutes, Some(30));
        assert!(d.reasoning.contains("clock went back"));
    }

    #[test]
    fn warns_near_and_beyond_the_retention() {
        let t1 = at(0, 0, 0);
        let p = RefetchPolicy::default();
        // 19 h of 24: below 80 % but interval 19h + 9.5h exceeds the retention.
        let d = decide(&p, t1, t1 + Duration::hours(19));
        assert_eq!(d.risk, RetentionRisk::Beyond);
        assert!(d.warning.as_deref().unwrap().contains("cannot be served"));
        // With a small margin, 20 h is "near" (>= 80 % of 24 h = 19.2 h).
        let small = RefetchPolicy {
            margin_percent: 0,
            margin_min_minutes: 1,
            ..p
        };
        let d = decide(&small, t1, t1 + Duration::hours(20));
        assert_eq!(d.risk, RetentionRisk::Near);
        assert!(d.reasoning.contains("WARNING"));
        let d = decide(&small, t1, t1 + Duration::hours(25));
        assert_eq!(d.risk, RetentionRisk::Beyond);
        assert!(d.warning.unwrap().contains("EXCEEDS"));
        // Migration projects keep 120 h: 25 h is fine there.
        let mig = RefetchPolicy {
            retention: StoreRetention::Migration,
            ..p
        };
        assert_eq!(
            decide(&mig, t1, t1 + Duration::hours(25)).risk,
            RetentionRisk::None
        );
    }

    #[test]
    fn covers_checks_a_later_t2() {
        let d = decide(&RefetchPolicy::default(), at(4, 0, 0), at(5, 0, 0));
        assert!(d.covers(at(4, 0, 0), at(5, 29, 0)));
        assert!(!d.covers(at(4, 0, 0), at(5, 30, 0)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn interval_always_exceeds_the_downtime(
            secs in 0i64..(200 * 3600),
            pct in 0u32..300,
            min in 1u32..120,
        ) {
            let p = RefetchPolicy { margin_percent: pct, margin_min_minutes: min, ..Default::default() };
            let t1 = at(0, 0, 0);
            let t2 = t1 + Duration::seconds(secs);
            let d = decide(&p, t1, t2);
            let i = d.interval_minutes.unwrap();
            prop_assert!((i as f64) > secs as f64 / 60.0);
            prop_assert!(i >= d.downtime_minutes + u64::from(min));
            prop_assert!(d.covers(t1, t2));
        }

        #[test]
        fn interval_is_monotone_in_the_downtime(a in 0i64..(200 * 3600), b in 0i64..(200 * 3600)) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let p = RefetchPolicy::default();
            let t1 = at(0, 0, 0);
            let dl = decide(&p, t1, t1 + Duration::seconds(lo));
            let dh = decide(&p, t1, t1 + Duration::seconds(hi));
            prop_assert!(dl.interval_minutes <= dh.interval_minutes);
            prop_assert!(dl.downtime_minutes <= dh.downtime_minutes);
        }
    }
}
