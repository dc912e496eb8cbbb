//! A builder of recorded events for the core's tests.
//!
//! It numbers records, advances a virtual clock and applies each record with
//! `State::apply`, so a test sees at once whether the core accepts what it wrote. It takes
//! no decisions of its own: the steps it records are the ones a test names, or, for
//! [`Records::done_until`] and [`Records::finish`], the procedure's list
//! ([`crate::steps::plan_keys`], or the recorded rollback's keys) walked in order. It never
//! asks the state which step is permitted, so a test that uses it checks the core's rules
//! instead of following them. The facts of a done step are the samples'
//! ([`samples::done_facts`]). What the executor does and records is tested against the real
//! executor by the simulator (`crate::sim::driver`).

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::*;
use crate::events::samples;
use crate::steps::{Step, plan_keys};

/// Recorded events of one run and the state they replay to.
pub(crate) struct Records {
    /// The state after every accepted record.
    pub state: State,
    /// The accepted records, in order.
    pub events: Vec<Recorded>,
    /// The run's plan (recorded by [`Records::planned`]).
    pub plan: Plan,
    /// The time of the last accepted record.
    pub now: DateTime<Utc>,
    seq: u64,
}

impl Records {
    /// A run with `plan` recorded.
    pub fn planned(plan: Plan) -> Records {
        let mut s = Records::empty(plan.clone());
        s.push(Event::planned(plan)).unwrap();
        s
    }

    /// No events yet.
    pub fn empty(plan: Plan) -> Records {
        Records {
            state: State::new(),
            events: vec![],
            plan,
            now: samples::t0() - Duration::minutes(5),
            seq: 0,
        }
    }

    /// A deployment's plan (issue 15): the samples' plan as node 0, plus `nodes - 1` other
    /// nodes over `regions` regions. Node `i` is labelled `oms-a`, `oms-b`, ..., is in
    /// region `i % regions`, and runs `docker_init.sh` when it is its region's first node
    /// (the region's nodes share one config file); nodes 1.. are reached over
    /// `ssh://root@10.0.0.<i + 5>` and have their own container ids and names.
    pub fn deployment_plan(nodes: u8, regions: u8) -> Plan {
        use crate::events::{Deployment, NodeMeta, NodePlan, PlanExt, RegionIx, RegionPlan};
        let base = samples::plan();
        let meta = |i: u8| NodeMeta {
            label: format!("oms-{}", char::from(b'a' + i)),
            region: RegionIx(i % regions),
            endpoint: if i == 0 {
                "local".into()
            } else {
                format!("ssh://root@10.0.0.{}", i + 5)
            },
            runs_init: i < regions,
        };
        let region_plans = (0..regions)
            .map(|r| RegionPlan {
                name: format!("region-{r}"),
                heartbeat_db: if r == 0 {
                    base.databases.cm_hb.clone()
                } else {
                    format!("{}_{r}", base.databases.cm_hb)
                },
            })
            .collect();
        let node_plans = (1..nodes)
            .map(|i| {
                let ip = format!("10.0.0.{}", i + 5);
                let mut old = base.old_container.clone();
                old.id = format!("old{i}");
                NodePlan {
                    meta: meta(i),
                    old_container: old,
                    settings: None,
                    host_ip: ip.clone(),
                    health_url: format!("http://{ip}:8089/oms/health"),
                    old_renamed_to: format!("{}-{i}", base.old_renamed_to),
                    new_name: base.new_name.clone(),
                    failed_name: format!("{}-{i}", base.failed_name),
                    target_image_id: base.target_image_id.clone(),
                }
            })
            .collect();
        let mut plan = base;
        plan.ext.push(PlanExt::Deployment(Box::new(Deployment {
            node0: meta(0),
            regions: region_plans,
            nodes: node_plans,
        })));
        plan
    }

    /// The plan's run id.
    pub fn run_id(&self) -> Uuid {
        self.plan.run_id
    }

    /// The record the next event would get: the next seq, 61 s after the last record.
    pub fn record(&self, event: Event) -> Recorded {
        Recorded {
            seq: self.seq + 1,
            at: self.now + Duration::seconds(61),
            operator: "alice".into(),
            host: "node1".into(),
            run_id: self.run_id(),
            event,
        }
    }

    /// Applies an event (advancing seq and clock only when accepted).
    pub fn push(&mut self, event: Event) -> Result<(), Rejection> {
        let r = self.record(event);
        self.state.apply(&r)?;
        self.seq = r.seq;
        self.now = r.at;
        self.events.push(r);
        Ok(())
    }

    /// The samples' successful facts for `key` at the next record's time (`enable-ha`
    /// facts cover the downtime from the T1 the state holds).
    pub fn facts(&self, key: StepKey) -> StepFacts {
        let since = match self.state.step(key) {
            Ok(Step::EnableHa(h)) | Ok(Step::RollbackEnableHa(h)) => h.since,
            _ => None,
        };
        samples::done_facts(&self.plan, key, self.now + Duration::seconds(61), since)
    }

    /// Records `step.intent` for `key`.
    pub fn intent(&mut self, key: StepKey) -> Result<(), Rejection> {
        self.push(Event::StepIntent { key })
    }

    /// Records `step.done` for `key` with the samples' facts.
    pub fn done(&mut self, key: StepKey) -> Result<(), Rejection> {
        let facts = self.facts(key);
        self.push(Event::StepDone { key, facts })
    }

    /// Records a service failure of `key`.
    pub fn fail(&mut self, key: StepKey, retryable: bool) -> Result<(), Rejection> {
        self.push(Event::StepFailed {
            key,
            error: "simulated failure".into(),
            retryable,
            facts: None,
            kind: FailureKind::Service,
        })
    }

    /// Records intent then done for `key`; panics if the core refuses either.
    pub fn step_ok(&mut self, key: StepKey) {
        self.intent(key)
            .unwrap_or_else(|e| panic!("intent {key} refused: {e}"));
        self.done(key)
            .unwrap_or_else(|e| panic!("done {key} refused: {e}"));
    }

    /// The list being walked (the recorded rollback's keys once one was requested, else
    /// the plan's upgrade steps) from the key last attempted on, without the done ones.
    fn ahead(&self) -> Vec<StepKey> {
        let list = match self.state.rollback() {
            Some(rb) => rb.keys.clone(),
            None => plan_keys(&self.plan),
        };
        let from = self
            .state
            .attempts()
            .last()
            .and_then(|a| list.iter().position(|k| *k == a.key))
            .unwrap_or(0);
        list[from..]
            .iter()
            .copied()
            .filter(|k| self.state.status(*k) != StepStatus::Done)
            .collect()
    }

    /// Records every step of the list ahead before `key` as done; `key` itself is not
    /// recorded. Panics if `key` is not ahead.
    pub fn done_until(&mut self, key: StepKey) {
        let ahead = self.ahead();
        let Some(n) = ahead.iter().position(|k| *k == key) else {
            panic!("{key} is not ahead in {ahead:?}")
        };
        for k in &ahead[..n] {
            self.step_ok(*k);
        }
    }

    /// Records every step of the list ahead as done.
    pub fn finish(&mut self) {
        for k in self.ahead() {
            self.step_ok(k);
        }
    }

    /// Records `run.rollback-requested`.
    pub fn rollback(&mut self) -> Result<(), Rejection> {
        self.push(Event::RollbackRequested {
            reason: "test".into(),
        })
    }
}
