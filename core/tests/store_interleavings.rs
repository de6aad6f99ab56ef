//! The grant rules under every interleaving, not only the ones a machine
//! happens to produce: a property test (proptest) generates a few writers,
//! each with a short script of creates, deletes, revoke-alls and status
//! reports, and a schedule; the writers run as real threads over a key-value
//! store that lets exactly one of them perform one operation at a time, in
//! the order the schedule picks. Afterwards the whole store is checked:
//!
//! * no duplicate: no two live grants with the same terms;
//! * no lost grant: a create that returned its grant, with no successful
//!   delete of it and no revoke-all that had not finished before the create
//!   began, still lists;
//! * no resurrected grant: a deleted grant, or one created entirely before
//!   a revoke-all began, never lists;
//! * statuses consistent: a listed grant has a status only if a report for
//!   it was recorded, and has one if a recorded report's grant still lists;
//! * the epoch counts the revoke-alls, and the agent's job queue holds a job
//!   for every create, delete and revoke-all that returned.
//!
//! The claim protocol waits on the injected clock; here that clock only moves
//! when a writer waits, so a writer the schedule starves can look abandoned
//! to another, as a slow component would, and the rules must still hold.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use lanyard_core::clock::Clock;
use lanyard_core::ids::{ClusterId, GrantId, MemberId};
use lanyard_core::kv::{KeyValue, KvError, MemoryKv};
use lanyard_core::model::{Email, GrantSpec, Namespace, Observed, Role, Scope};
use lanyard_core::records::Job;
use lanyard_core::store::Store;
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000;

fn cluster() -> ClusterId {
    ClusterId::parse("c_000000000000000000000001").unwrap()
}

/// Three possible grants, so that writers collide on purpose.
fn spec(k: u8) -> GrantSpec {
    let (role, ns) = match k % 3 {
        0 => (Role::View, Some("team-a")),
        1 => (Role::Edit, Some("team-a")),
        _ => (Role::View, None),
    };
    let scope = ns.map_or(Scope::Cluster, |n| Scope::Namespace(Namespace::parse(n).unwrap()));
    GrantSpec::new(Email::parse("dev@ex.io").unwrap(), role, scope).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Create(u8),
    /// Delete the live grant with these terms, if one lists.
    Delete(u8),
    RevokeAll,
    /// Report the live grant with these terms applied, if one lists.
    Report(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3).prop_map(Op::Create),
        2 => (0u8..3).prop_map(Op::Delete),
        1 => Just(Op::RevokeAll),
        2 => (0u8..3).prop_map(Op::Report),
    ]
}

/// Lets one writer at a time perform one key-value operation, chosen by the
/// schedule among the writers waiting at their next operation.
struct Turnstile {
    state: Mutex<Turn>,
    changed: Condvar,
}

struct Turn {
    /// The writer allowed to run until its next operation.
    running: Option<usize>,
    /// Writers waiting at an operation.
    waiting: BTreeSet<usize>,
    /// Writers that have not finished.
    alive: usize,
    schedule: Vec<u8>,
    step: usize,
}

impl Turnstile {
    fn new(writers: usize, schedule: Vec<u8>) -> Turnstile {
        Turnstile {
            state: Mutex::new(Turn { running: None, waiting: BTreeSet::new(), alive: writers, schedule, step: 0 }),
            changed: Condvar::new(),
        }
    }

    /// Hand the turn on once every live writer is waiting.
    fn pick(turn: &mut Turn) {
        if turn.running.is_none() && turn.waiting.len() == turn.alive && turn.alive > 0 {
            let choice = turn.schedule.get(turn.step % turn.schedule.len().max(1)).copied().unwrap_or(0);
            turn.step += 1;
            let next = *turn.waiting.iter().nth(usize::from(choice) % turn.waiting.len()).unwrap();
            turn.waiting.remove(&next);
            turn.running = Some(next);
        }
    }

    /// Wait until the schedule lets `writer` perform its next operation.
    fn gate(&self, writer: usize) {
        let mut turn = self.state.lock().unwrap();
        if turn.running == Some(writer) {
            turn.running = None;
        }
        turn.waiting.insert(writer);
        Self::pick(&mut turn);
        self.changed.notify_all();
        while turn.running != Some(writer) {
            turn = self.changed.wait(turn).unwrap();
        }
    }

    fn finish(&self, writer: usize) {
        let mut turn = self.state.lock().unwrap();
        if turn.running == Some(writer) {
            turn.running = None;
        }
        turn.alive -= 1;
        Self::pick(&mut turn);
        self.changed.notify_all();
    }
}

/// The shared store, as one writer sees it through the turnstile.
struct Gated<'a> {
    kv: &'a MemoryKv,
    turnstile: &'a Turnstile,
    writer: usize,
}

impl KeyValue for Gated<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.turnstile.gate(self.writer);
        self.kv.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.turnstile.gate(self.writer);
        self.kv.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.turnstile.gate(self.writer);
        self.kv.delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.turnstile.gate(self.writer);
        self.kv.increment(key, delta)
    }
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.turnstile.gate(self.writer);
        self.kv.get_many(keys)
    }
    fn delete_many(&self, keys: &[String]) -> Result<(), KvError> {
        self.turnstile.gate(self.writer);
        self.kv.delete_many(keys)
    }
}

/// A clock that moves only when someone waits on it (by what they wait).
#[derive(Default)]
struct WaitingClock(AtomicU64);

impl Clock for WaitingClock {
    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::SeqCst))
    }
    fn sleep(&self, duration: Duration) {
        self.0.fetch_add(duration.as_nanos() as u64, Ordering::SeqCst);
    }
}

/// What one operation did, between two ticks of a logical clock taken when
/// it began and when it returned.
#[derive(Debug, Clone)]
struct Done {
    began: u64,
    ended: u64,
    what: Outcome,
}

#[derive(Debug, Clone)]
enum Outcome {
    Created(GrantId),
    Deleted(GrantId),
    Revoked,
    Reported(GrantId),
    Nothing,
}

/// Run the writers on `schedule` and check the rules; returns how long the
/// writers waited on the clock in all.
fn run(scripts: &[Vec<Op>], schedule: Vec<u8>) -> Result<Duration, TestCaseError> {
    let kv = MemoryKv::new();
    let clock = WaitingClock::default();
    let turnstile = Turnstile::new(scripts.len(), schedule);
    let ticks = AtomicU64::new(0);
    let tick = || ticks.fetch_add(1, Ordering::SeqCst);
    let member = MemberId::derive(&["m_dev"]);
    let done: Vec<Done> = std::thread::scope(|s| {
        let handles: Vec<_> = scripts
            .iter()
            .enumerate()
            .map(|(writer, script)| {
                let (kv, clock, turnstile, member, tick) = (&kv, &clock, &turnstile, &member, &tick);
                s.spawn(move || {
                    let gated = Gated { kv, turnstile, writer };
                    let store = Store::new(&gated, clock);
                    let c = cluster();
                    let mut done = Vec::new();
                    let find = |k: u8| -> Option<GrantId> {
                        let fp = spec(k).fingerprint();
                        store.grants(&c).unwrap().into_iter().find(|g| g.grant.fingerprint == fp).map(|g| g.grant.id)
                    };
                    for op in script {
                        let began = tick();
                        let what = match op {
                            Op::Create(k) => match store.create_grant(&c, &spec(*k), member, "admin@ex.io", NOW) {
                                Ok(g) => Outcome::Created(g.id),
                                Err(_) => Outcome::Nothing,
                            },
                            Op::Delete(k) => match find(*k).map(|id| store.delete_grant(&c, &id, NOW)) {
                                Some(Ok(g)) => Outcome::Deleted(g.id),
                                _ => Outcome::Nothing,
                            },
                            Op::RevokeAll => {
                                store.revoke_all(&c, NOW).unwrap();
                                Outcome::Revoked
                            }
                            Op::Report(k) => match find(*k) {
                                Some(id) => {
                                    let applied = (id.clone(), Observed::Applied { at: NOW });
                                    match store.record_reports(&c, &[applied]).unwrap() {
                                        1 => Outcome::Reported(id),
                                        _ => Outcome::Nothing,
                                    }
                                }
                                None => Outcome::Nothing,
                            },
                        };
                        done.push(Done { began, ended: tick(), what });
                    }
                    turnstile.finish(writer);
                    done
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });

    let store = Store::new(&kv, &clock);
    let c = cluster();
    let listed = store.grants(&c).unwrap();
    let live: HashMap<GrantId, Option<Observed>> =
        listed.iter().map(|g| (g.grant.id.clone(), g.observed.clone())).collect();
    // The member's own log holds exactly the member's grants that list.
    let mine: HashSet<GrantId> = store
        .member_grants_at(&c, store.epoch(&c).unwrap(), &MemberId::derive(&["m_dev"]))
        .unwrap()
        .into_iter()
        .map(|g| g.grant.id)
        .collect();
    prop_assert_eq!(&mine, &live.keys().cloned().collect::<HashSet<_>>(), "the member's grants");
    let fingerprints: HashSet<&str> = listed.iter().map(|g| g.grant.fingerprint.as_str()).collect();
    prop_assert_eq!(fingerprints.len(), listed.len(), "a duplicate grant lists: {:?}", listed);

    let revokes: Vec<&Done> = done.iter().filter(|d| matches!(d.what, Outcome::Revoked)).collect();
    let deleted: HashSet<&GrantId> =
        done.iter().filter_map(|d| if let Outcome::Deleted(id) = &d.what { Some(id) } else { None }).collect();
    let reported: HashSet<&GrantId> =
        done.iter().filter_map(|d| if let Outcome::Reported(id) = &d.what { Some(id) } else { None }).collect();
    for d in &done {
        let Outcome::Created(id) = &d.what else { continue };
        let killed_after = revokes.iter().any(|r| r.ended > d.began);
        if !deleted.contains(id) && !killed_after {
            prop_assert!(live.contains_key(id), "grant {id} was lost: {done:?}");
        }
        let revoked_later = revokes.iter().any(|r| r.began > d.ended);
        if revoked_later {
            prop_assert!(!live.contains_key(id), "grant {id} survived a later revoke-all: {done:?}");
        }
    }
    for id in &deleted {
        prop_assert!(!live.contains_key(*id), "deleted grant {id} lists again: {done:?}");
    }
    for (id, observed) in &live {
        if observed.is_some() {
            prop_assert!(reported.contains(id), "grant {id} has a status no report gave it");
        }
        if reported.contains(id) {
            prop_assert!(observed.is_some(), "grant {id}'s recorded report was lost");
        }
    }
    prop_assert_eq!(store.epoch(&c).unwrap(), revokes.len() as i64, "the epoch counts the revoke-alls");

    let jobs: Vec<Job> = store.jobs_after(&c, 0, 10_000).unwrap().into_iter().map(|(_, j)| j).collect();
    for d in &done {
        let queued = match &d.what {
            Outcome::Created(id) => {
                jobs.iter().any(|j| matches!(j, Job::GrantCreated { grant_id, .. } if grant_id == id))
            }
            Outcome::Deleted(id) => {
                jobs.iter().any(|j| matches!(j, Job::GrantDeleted { grant_id, .. } if grant_id == id))
            }
            Outcome::Revoked => jobs.iter().any(|j| matches!(j, Job::RevokeAll { .. })),
            Outcome::Reported(_) | Outcome::Nothing => true,
        };
        prop_assert!(queued, "no job for {:?}", d.what);
    }
    let revoke_jobs = jobs.iter().filter(|j| matches!(j, Job::RevokeAll { .. })).count();
    prop_assert_eq!(revoke_jobs, revokes.len(), "one job per revoke-all");
    Ok(clock.monotonic())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_grant_rules_hold_under_any_interleaving(
        scripts in prop::collection::vec(prop::collection::vec(op(), 1..4), 2..4),
        schedule in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        run(&scripts, schedule)?;
    }
}

/// The schedule that starves a create's owner mid-claim until an identical
/// create gives the claim up as abandoned: the one grant still lists once.
#[test]
fn a_starved_claim_owner_and_its_rival_make_one_grant() {
    let scripts = vec![vec![Op::Create(0)], vec![Op::Create(0)]];
    // Writer 0 takes the claim (its fourth step: epoch, generation counter,
    // released marker, claim), then writer 1 runs alone (choice 1 of the two
    // waiting) until the claim looks abandoned, then both finish.
    let mut schedule = vec![0, 0, 0, 0];
    schedule.extend(std::iter::repeat_n(1, 600));
    let waited = run(&scripts, schedule).unwrap();
    assert!(waited >= lanyard_core::store::CLAIM_PATIENCE, "the rival waited out the patience ({waited:?})");
}

/// A claim owner starved past the patience, whose rival completed the claim
/// and then deleted the grant, must not bring the grant back when it wakes.
#[test]
fn a_starved_claim_owner_does_not_resurrect_a_deleted_grant() {
    let scripts = vec![vec![Op::Create(0)], vec![Op::Create(0), Op::Delete(0)]];
    let mut schedule = vec![0, 0, 0, 0];
    schedule.extend(std::iter::repeat_n(1, 900));
    let waited = run(&scripts, schedule).unwrap();
    assert!(waited >= lanyard_core::store::CLAIM_PATIENCE, "the owner was starved past the patience ({waited:?})");
}
