//! A simulated executor for the core's tests: appends events through `State::apply`
//! with a virtual clock, producing the facts a real executor would record.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::*;
use crate::events::samples;
use crate::steps::Step;

pub(crate) struct Sim {
    pub state: State,
    pub events: Vec<Recorded>,
    pub plan: Plan,
    pub now: DateTime<Utc>,
    seq: u64,
}

impl Sim {
    /// A run with `plan` recorded.
    pub fn planned(plan: Plan) -> Sim {
        let mut s = Sim::empty(plan.clone());
        s.push(Event::planned(plan)).unwrap();
        s
    }

    /// No events yet.
    pub fn empty(plan: Plan) -> Sim {
        Sim {
            state: State::new(),
            events: vec![],
            plan,
            now: samples::t0() - Duration::minutes(5),
            seq: 0,
        }
    }

    pub fn run_id(&self) -> Uuid {
        self.plan.run_id
    }

    /// The record the next event would get.
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

    /// Facts a successful executor would record for `key` right now.
    pub fn facts(&self, key: StepKey) -> StepFacts {
        let since = match self.state.step(key) {
            Ok(Step::EnableHa(h)) | Ok(Step::RollbackEnableHa(h)) => h.since,
            _ => None,
        };
        samples::done_facts(&self.plan, key, self.now + Duration::seconds(61), since)
    }

    pub fn intent(&mut self, key: StepKey) -> Result<(), Rejection> {
        self.push(Event::StepIntent { key })
    }

    pub fn done(&mut self, key: StepKey) -> Result<(), Rejection> {
        let facts = self.facts(key);
        self.push(Event::StepDone { key, facts })
    }

    pub fn fail(&mut self, key: StepKey, retryable: bool) -> Result<(), Rejection> {
        self.push(Event::StepFailed {
            key,
            error: "simulated failure".into(),
            retryable,
            facts: None,
            kind: FailureKind::Service,
        })
    }

    /// Intent then done for the next permitted step; returns its key.
    pub fn step_ok(&mut self) -> StepKey {
        let key = self.state.permitted()[0].key();
        self.intent(key).unwrap();
        self.done(key).unwrap();
        key
    }

    /// Runs permitted steps successfully until `key` is the next one.
    pub fn run_until(&mut self, key: StepKey) {
        while self.state.permitted()[0].key() != key {
            self.step_ok();
        }
    }

    /// Runs permitted steps successfully until nothing is permitted.
    pub fn run_all(&mut self) {
        while !self.state.permitted().is_empty() {
            self.step_ok();
        }
    }

    pub fn rollback(&mut self) -> Result<(), Rejection> {
        self.push(Event::RollbackRequested {
            reason: "test".into(),
        })
    }
}
