//! The journal's bridge to the witness (issue 14): every record the journal makes durable
//! is then pushed, as its exact stored bytes, to the witness the plan names.
//!
//! The journal is synchronous (an append is an fsync) and the [`Witness`] trait is async.
//! The bridge is a dedicated thread with its own single-threaded tokio runtime, fed over a
//! channel: the journal sends a request and blocks on the reply. That works the same from
//! inside the executor's runtime (the call blocks one worker, as the fsync does), from a
//! plain thread, and from the simulator that polls the executor by hand (no runtime at
//! all). Each request is bounded by a timeout, so a witness that hangs is "unreachable",
//! never a run that hangs.
//!
//! The bridge remembers the highest seq the witness is known to hold (`witnessed`); a push
//! sends everything after it, so records a failed push left behind go with the next one.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use uuid::Uuid;

use crate::ledger::{Hash, LedgerView, Record};
use crate::witness::{
    PushReport, Witness, WitnessCheckpoint, WitnessError, WitnessPolicy, WitnessRecord,
};

/// How long one request to the witness may take before it counts as unreachable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Most records one push carries (a catch-up of a long backlog is several pushes).
const PUSH_CHUNK: usize = 200;

type Reply<T> = mpsc::Sender<Result<T, WitnessError>>;

enum Job {
    Push(String, Vec<Record>, Reply<PushReport>),
    Head(Uuid, Reply<Option<(u64, Vec<Hash>)>>),
    Records(Uuid, u64, Reply<Vec<WitnessRecord>>),
    Checkpoint(Box<WitnessCheckpoint>, Reply<()>),
}

/// A witness behind a thread of its own, with the policy and node identity the journal
/// pushes under. Dropping it ends the thread.
pub struct Mirror {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    target: String,
    policy: WitnessPolicy,
    node: String,
    timeout: Duration,
    /// The highest seq the witness is known to hold (0: nothing, or not known yet).
    witnessed: u64,
    /// Whether the best-effort warning was printed already.
    warned: bool,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("target", &self.target)
            .field("policy", &self.policy)
            .field("witnessed", &self.witnessed)
            .finish_non_exhaustive()
    }
}

/// What a catch-up found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// The witness's head before (its highest seq for this ledger, 0 for none).
    pub witness_head: u64,
    /// Records pushed now.
    pub pushed: PushReport,
}

impl Mirror {
    /// Starts the bridge thread and builds the witness on it with `make` (inside its
    /// runtime, so a client that spawns tasks when made finds one). `target` is the
    /// witness as shown (no password); `node` is the identity each pushed row carries
    /// (the host name the journal records, as the command line reads it: `OMS_UPGRADE_HOST`, else the system host name).
    pub fn spawn<W, F>(
        make: F,
        target: String,
        policy: WitnessPolicy,
        node: String,
    ) -> std::io::Result<Mirror>
    where
        W: Witness + 'static,
        F: FnOnce() -> W + Send + 'static,
    {
        Self::spawn_with_timeout(make, target, policy, node, DEFAULT_TIMEOUT)
    }

    /// [`Mirror::spawn`] with a request timeout of its own (tests).
    pub fn spawn_with_timeout<W, F>(
        make: F,
        target: String,
        policy: WitnessPolicy,
        node: String,
        timeout: Duration,
    ) -> std::io::Result<Mirror>
    where
        W: Witness + 'static,
        F: FnOnce() -> W + Send + 'static,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, rx) = mpsc::channel::<Job>();
        let shown = target.clone();
        let thread = std::thread::Builder::new()
            .name("witness".into())
            .spawn(move || {
                let witness = {
                    let _in_rt = rt.enter();
                    make()
                };
                let bounded = |what: &'static str| WitnessError::Unreachable {
                    target: shown.clone(),
                    reason: format!("no answer to {what} within {} s", timeout.as_secs()),
                };
                // A reply nobody waits for any more (the journal gave up) is dropped.
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Push(node, records, reply) => {
                            // The timer is made inside the runtime, which owns it.
                            let r = rt
                                .block_on(async {
                                    tokio::time::timeout(timeout, witness.push(&node, &records))
                                        .await
                                })
                                .unwrap_or_else(|_| Err(bounded("a push")));
                            let _ = reply.send(r);
                        }
                        Job::Head(id, reply) => {
                            let r = rt
                                .block_on(async {
                                    tokio::time::timeout(timeout, witness.head(id)).await
                                })
                                .unwrap_or_else(|_| Err(bounded("a head query")));
                            let _ = reply.send(r);
                        }
                        Job::Records(id, from, reply) => {
                            let r = rt
                                .block_on(async {
                                    tokio::time::timeout(timeout, witness.records(id, from)).await
                                })
                                .unwrap_or_else(|_| Err(bounded("a read")));
                            let _ = reply.send(r);
                        }
                        Job::Checkpoint(c, reply) => {
                            let r = rt
                                .block_on(async {
                                    tokio::time::timeout(timeout, witness.push_checkpoint(&c)).await
                                })
                                .unwrap_or_else(|_| Err(bounded("a checkpoint push")));
                            let _ = reply.send(r);
                        }
                    }
                }
                // Dropped inside the runtime, so a client that says goodbye when dropped
                // (mysql_async sends its COM_QUIT from a spawned task) gets a moment to.
                rt.block_on(async move {
                    drop(witness);
                    tokio::task::yield_now().await;
                });
            })?;
        Ok(Mirror {
            tx: Some(tx),
            thread: Some(thread),
            target,
            policy,
            node,
            timeout,
            witnessed: 0,
            warned: false,
        })
    }

    /// The witness as shown (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The policy pushes run under.
    pub fn policy(&self) -> WitnessPolicy {
        self.policy
    }

    /// The highest seq the witness is known to hold.
    pub fn witnessed(&self) -> u64 {
        self.witnessed
    }

    fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, WitnessError> {
        let gone = || WitnessError::Unreachable {
            target: self.target.clone(),
            reason: "the witness thread stopped".into(),
        };
        let (reply, answer) = mpsc::channel();
        self.tx
            .as_ref()
            .ok_or_else(gone)?
            .send(job(reply))
            .map_err(|_| gone())?;
        // The thread bounds each request by `timeout`; the margin covers the hand-over.
        match answer.recv_timeout(self.timeout + Duration::from_secs(5)) {
            Ok(r) => r,
            Err(_) => Err(gone()),
        }
    }

    /// The witness's highest seq for `ledger_id` with its hash(es) (more than one is a
    /// fork), `None` when it holds nothing for the ledger.
    pub fn head(&self, ledger_id: Uuid) -> Result<Option<(u64, Vec<Hash>)>, WitnessError> {
        self.ask(|r| Job::Head(ledger_id, r))
    }

    /// Pushes every record of `view` after `from` (exclusive), in chunks; on success the
    /// witness is known to hold everything up to the last one.
    fn push_after(&mut self, view: &LedgerView, from: u64) -> Result<PushReport, WitnessError> {
        let mut total = PushReport::default();
        let mut chunk = Vec::with_capacity(PUSH_CHUNK);
        let mut flush = |this: &mut Mirror, chunk: &mut Vec<Record>| {
            if chunk.is_empty() {
                return Ok::<(), WitnessError>(());
            }
            let node = this.node.clone();
            let records = std::mem::take(chunk);
            let last = records.last().map_or(0, |r| r.seq);
            let r = this.ask(|reply| Job::Push(node, records, reply))?;
            total.inserted += r.inserted;
            total.already_there += r.already_there;
            this.witnessed = last;
            Ok(())
        };
        for r in view.records() {
            let r = r.map_err(|e| WitnessError::Malformed {
                ledger_id: view.ledger_id(),
                seq: 0,
                reason: format!("the local ledger could not be read for the push: {e}"),
            })?;
            if r.seq <= from {
                continue;
            }
            chunk.push(r);
            if chunk.len() == PUSH_CHUNK {
                flush(self, &mut chunk)?;
            }
        }
        flush(self, &mut chunk)?;
        Ok(total)
    }

    /// Brings the witness up to the local ledger: asks its head, then pushes every record
    /// it lacks. Called when the journal is opened with a witness, before anything is
    /// recorded or done.
    pub fn catch_up(&mut self, view: &LedgerView) -> Result<CatchUp, WitnessError> {
        let ledger_id = view.ledger_id();
        let unreadable = |e: crate::ledger::LedgerError| WitnessError::Malformed {
            ledger_id,
            seq: 0,
            reason: format!("the local ledger could not be read for the push: {e}"),
        };
        let local = view.head().map_err(unreadable)?.map_or(0, |r| r.seq);
        let Some((head, theirs)) = self.head(ledger_id)? else {
            self.witnessed = 0;
            let pushed = self.push_after(view, 0)?;
            return Ok(CatchUp {
                witness_head: 0,
                pushed,
            });
        };
        // The record both hold last must be the same one: otherwise two histories were
        // written under this ledger id (a rewritten or replaced local ledger, or another
        // copy of it that was pushed). A witness ahead of the local ledger is compared at
        // the local head: the next push shows whether they part after it.
        let at = head.min(local);
        if at > 0 {
            let ours = view
                .records()
                .find(|r| r.as_ref().map_or(true, |r| r.seq == at))
                .transpose()
                .map_err(unreadable)?
                .map(|r| r.hash);
            let theirs = if at == head {
                theirs
            } else {
                self.hashes_at(ledger_id, at)?
            };
            if let Some(ours) = ours
                && theirs.iter().any(|h| *h != ours)
            {
                return Err(WitnessError::Fork {
                    ledger_id,
                    seq: at,
                    ours,
                    theirs: theirs.into_iter().filter(|h| *h != ours).collect(),
                });
            }
        }
        self.witnessed = at;
        let pushed = if local > head {
            self.push_after(view, head)?
        } else {
            PushReport::default()
        };
        Ok(CatchUp {
            witness_head: head,
            pushed,
        })
    }

    /// The hashes the witness holds at (`ledger_id`, `seq`).
    fn hashes_at(&self, ledger_id: Uuid, seq: u64) -> Result<Vec<Hash>, WitnessError> {
        Ok(self
            .ask(|r| Job::Records(ledger_id, seq, r))?
            .into_iter()
            .filter(|w| w.seq == seq)
            .map(|w| w.hash)
            .collect())
    }

    /// Pushes `appended` (just made durable) and whatever the witness still lacks before
    /// them.
    pub fn ship(&mut self, view: &LedgerView, appended: Vec<Record>) -> Result<(), WitnessError> {
        let Some(first) = appended.first().map(|r| r.seq) else {
            return Ok(());
        };
        if first != self.witnessed + 1 {
            return self.push_after(view, self.witnessed).map(|_| ());
        }
        let last = appended.last().map_or(first, |r| r.seq);
        let node = self.node.clone();
        self.ask(|reply| Job::Push(node, appended, reply))?;
        self.witnessed = last;
        Ok(())
    }

    /// Pushes a signed checkpoint (the exact text of the file `run` wrote beside the
    /// ledger folder), idempotently.
    pub fn push_checkpoint(&self, checkpoint: WitnessCheckpoint) -> Result<(), WitnessError> {
        self.ask(|r| Job::Checkpoint(Box::new(checkpoint), r))
    }

    /// Under best-effort: says once, on stderr and in the log, that the witness is behind.
    pub fn warn_once(&mut self, err: &WitnessError) {
        tracing::warn!(target = %self.target, error = %err, "the witness did not take a record; the run goes on (policy best-effort)");
        if !self.warned {
            self.warned = true;
            eprintln!(
                "warning: {err}. The run goes on (witness policy best-effort); the witness \
                 lags behind this ledger until `oms-upgrade ledger push` catches it up"
            );
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::events::{Event, MetaDb, StepFacts, StepKey, samples};
    use crate::executor::{Journal, JournalError, WitnessWhen};
    use crate::replay::build::Records;
    use crate::witness::MemoryWitness;

    fn mirror(w: &Arc<MemoryWitness>, policy: WitnessPolicy) -> Mirror {
        let w = Arc::clone(w);
        Mirror::spawn_with_timeout(
            move || w,
            "memory".into(),
            policy,
            "node-a".into(),
            Duration::from_secs(5),
        )
        .unwrap()
    }

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Every witness row of the ledger in `dir`, as (seq, stored bytes).
    fn witness_rows(w: &MemoryWitness, id: Uuid) -> Vec<(u64, Vec<u8>)> {
        block(w.records(id, 0))
            .unwrap()
            .into_iter()
            .map(|r| {
                assert_eq!(r.node, "node-a");
                (r.seq, r.stored)
            })
            .collect()
    }

    fn local_rows(j: &Journal) -> Vec<(u64, Vec<u8>)> {
        j.ledger()
            .view()
            .records()
            .map(|r| r.map(|r| (r.seq, r.stored)).unwrap())
            .collect()
    }

    /// A planned journal with `policy`'s mirror attached, and the records still to make.
    fn planned(dir: &Path, w: &Arc<MemoryWitness>, policy: WitnessPolicy) -> (Journal, Records) {
        let rec = Records::planned(samples::plan());
        let mut j = Journal::open(dir, "op", "node-a").unwrap();
        j.attach_mirror(mirror(w, policy)).unwrap();
        for r in &rec.events {
            j.record(rec.run_id(), r.at, r.event.clone()).unwrap();
        }
        (j, rec)
    }

    /// Every record, the `step.tables` slices of a batch included, reaches the witness as
    /// its exact stored bytes, once.
    #[test]
    fn every_record_reaches_the_witness_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(MemoryWitness::new());
        let (mut j, mut rec) = planned(dir.path(), &w, WitnessPolicy::Required);
        let key = StepKey::Dump { db: MetaDb::Cm };
        rec.done_until(key);
        for r in rec.events.iter().skip(1) {
            j.record(rec.run_id(), r.at, r.event.clone()).unwrap();
        }
        j.record(rec.run_id(), rec.now, Event::StepIntent { key })
            .unwrap();
        let StepFacts::DumpWritten(mut a) = rec.facts(key) else {
            panic!("not a dump")
        };
        a.tables = samples::many_tables(2000);
        let facts = StepFacts::DumpWritten(a);
        j.record(rec.run_id(), rec.now, Event::StepDone { key, facts })
            .unwrap();
        assert_eq!(
            j.mirror().unwrap().witnessed(),
            j.ledger().head().unwrap().0
        );
        let local = local_rows(&j);
        assert!(local.len() > 10, "a batch of slices was recorded");
        assert_eq!(witness_rows(&w, j.ledger().ledger_id()), local);
    }

    /// Regression (issue 14, `required`): a record the witness did not take is an error,
    /// after the local append; the next journal refuses to go on until the witness has it,
    /// then pushes it once.
    #[test]
    fn required_stops_at_the_first_record_the_witness_lacks_and_catches_up_after() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(MemoryWitness::new());
        let (mut j, rec) = planned(dir.path(), &w, WitnessPolicy::Required);
        let key = StepKey::DisableHa;
        w.set_reachable(false);
        match j.record(rec.run_id(), rec.now, Event::StepIntent { key }) {
            Err(JournalError::Witness {
                when: WitnessWhen::Record { seq },
                source: WitnessError::Unreachable { .. },
            }) => assert_eq!(Some(seq), j.ledger().head().map(|h| h.0)),
            other => panic!("the run was not stopped: {other:?}"),
        }
        w.set_reachable(true);
        let id = j.ledger().ledger_id();
        let on_witness = witness_rows(&w, id).len();
        assert_eq!(on_witness + 1, local_rows(&j).len(), "one behind");
        drop(j);
        w.set_reachable(false);
        let mut j = Journal::open_existing(dir.path(), "op", "node-a").unwrap();
        match j.attach_mirror(mirror(&w, WitnessPolicy::Required)) {
            Err(JournalError::Witness {
                when: WitnessWhen::CatchUp { .. },
                ..
            }) => {}
            other => panic!("a journal behind the witness was opened: {other:?}"),
        }
        drop(j);
        w.set_reachable(true);
        let mut j = Journal::open_existing(dir.path(), "op", "node-a").unwrap();
        let caught = j
            .attach_mirror(mirror(&w, WitnessPolicy::Required))
            .unwrap()
            .unwrap();
        assert_eq!(caught.pushed.inserted, 1);
        j.record(rec.run_id(), rec.now, Event::Note { text: "on".into() })
            .unwrap();
        assert_eq!(witness_rows(&w, id), local_rows(&j));
    }

    /// `best-effort`: the run goes on, the witness lags, and the next push that gets
    /// through takes the backlog with it (no row twice).
    #[test]
    fn best_effort_goes_on_and_the_backlog_follows_the_next_push() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(MemoryWitness::new());
        let (mut j, rec) = planned(dir.path(), &w, WitnessPolicy::BestEffort);
        w.set_reachable(false);
        for i in 0..3 {
            j.record(
                rec.run_id(),
                rec.now,
                Event::Note {
                    text: format!("{i}"),
                },
            )
            .unwrap();
        }
        w.set_reachable(true);
        let id = j.ledger().ledger_id();
        let lagging = witness_rows(&w, id).len();
        assert_eq!(lagging + 3, local_rows(&j).len());
        j.record(rec.run_id(), rec.now, Event::Note { text: "x".into() })
            .unwrap();
        assert_eq!(witness_rows(&w, id), local_rows(&j));
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }

    /// A fork stops the journal under either policy: two ledgers with one id.
    #[test]
    fn a_fork_stops_under_both_policies() {
        for policy in [WitnessPolicy::Required, WitnessPolicy::BestEffort] {
            let dir = tempfile::tempdir().unwrap();
            let w = Arc::new(MemoryWitness::new());
            let (j, rec) = planned(dir.path(), &w, policy);
            drop(j);
            let copy = tempfile::tempdir().unwrap();
            copy_dir(dir.path(), copy.path());
            let mut a = Journal::open_existing(dir.path(), "op", "node-a").unwrap();
            a.attach_mirror(mirror(&w, policy)).unwrap();
            a.record(rec.run_id(), rec.now, Event::Note { text: "a".into() })
                .unwrap();
            let mut b = Journal::open_existing(copy.path(), "op", "node-a").unwrap();
            b.attach_mirror(mirror(&w, policy)).unwrap();
            match b.record(rec.run_id(), rec.now, Event::Note { text: "b".into() }) {
                Err(JournalError::Witness {
                    source: WitnessError::Fork { .. },
                    ..
                }) => {}
                other => panic!("{policy:?}: a fork was not stopped: {other:?}"),
            }
        }
    }

    /// A signed checkpoint goes through the bridge too, once however often it is pushed.
    #[test]
    fn a_checkpoint_is_pushed_once() {
        let w = Arc::new(MemoryWitness::new());
        let m = mirror(&w, WitnessPolicy::BestEffort);
        let c = WitnessCheckpoint {
            ledger_id: Uuid::from_u128(7),
            seq: 3,
            head: Hash([3; 32]),
            text: "checkpoint text".into(),
        };
        m.push_checkpoint(c.clone()).unwrap();
        m.push_checkpoint(c.clone()).unwrap();
        assert_eq!(block(w.checkpoints(c.ledger_id)).unwrap(), vec![c.clone()]);
        w.set_reachable(false);
        assert!(matches!(
            m.push_checkpoint(c),
            Err(WitnessError::Unreachable { .. })
        ));
    }

    /// The bridge works from inside a runtime too (the executor's), not only from a plain
    /// thread or a future polled by hand.
    #[tokio::test(flavor = "current_thread")]
    async fn the_bridge_works_inside_a_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let w = Arc::new(MemoryWitness::new());
        let (j, _) = planned(dir.path(), &w, WitnessPolicy::Required);
        drop(j);
        let id = crate::ledger::LedgerReader::open(dir.path())
            .unwrap()
            .ledger_id();
        assert_eq!(w.records(id, 0).await.unwrap().len(), 1);
    }
}
