//! Grants: create (exact duplicates are one grant, by the claim protocol),
//! read the live ones with their reported status, delete, revoke-all (one
//! `increment` of the epoch) and the agent's reports. The rules are in
//! [`super`]'s documentation, "How the grant rules hold without transactions".

use std::collections::HashSet;

use super::claim::{Claim, Generations};
use super::{Store, StoreError, from_json, keys, to_json};
use crate::ids::{ClusterId, GrantId, MemberId};
use crate::model::{GrantSpec, GrantTerms, Observed};
use crate::records::{GrantRecord, GrantWithStatus, Job, Revocation};

impl Store<'_> {
    /// The cluster's current revocation epoch.
    pub fn epoch(&self, cluster_id: &ClusterId) -> Result<i64, StoreError> {
        Ok(self.kv.increment(&keys::epoch(cluster_id), 0)?)
    }

    /// Create a grant; [`StoreError::DuplicateGrant`] if exactly this grant is live.
    ///
    /// A failed write leaves no grant that lists, and the same create again
    /// completes it; once the record is written the create has succeeded
    /// (the agent's wake-up job after it is best effort).
    pub fn create_grant(
        &self,
        cluster_id: &ClusterId,
        spec: &GrantSpec,
        member_id: &MemberId,
        created_by: &str,
        now: u64,
    ) -> Result<GrantRecord, StoreError> {
        let c = cluster_id;
        let epoch = self.epoch(c)?;
        let fp = spec.fingerprint();
        let generations = Self::grant_generations(c, epoch, &fp);
        loop {
            let generation = self.current(&generations)?;
            let id = GrantId::derive(&[c.as_str(), &epoch.to_string(), &fp, &generation.to_string()]);
            let record_key = keys::grant(c, &id);
            let still_current = || Ok(self.current(&generations)? == generation);
            match self.claim(&keys::grant_claim(c, epoch, &fp, generation), &record_key, &still_current)? {
                Claim::Exists => return Err(StoreError::DuplicateGrant),
                Claim::Retry => continue,
                Claim::Won | Claim::Abandoned => {}
            }
            let terms = GrantTerms {
                cluster_id: c.clone(),
                member_id: member_id.clone(),
                email: spec.email().clone(),
                role: spec.role(),
                scope: spec.scope().clone(),
            };
            let record = GrantRecord {
                id: id.clone(),
                terms,
                epoch,
                fingerprint: fp.clone(),
                generation,
                created_at: now,
                created_by: created_by.to_owned(),
            };
            // Slots first: a crash after them leaves slots without a record, which readers skip.
            let epoch_log = self.log(keys::epoch_grants(c, epoch));
            if epoch_log.last()? == 0 {
                // The epoch's first grant: from here on every grant of it is in its member's log.
                self.kv.set(&keys::epoch_member_indexed(c, epoch), b"1")?;
            }
            epoch_log.append(id.as_str().as_bytes())?;
            self.log(keys::epoch_member_grants(c, epoch, member_id)).append(id.as_str().as_bytes())?;
            // The record is the commit point: from this write on the grant exists (it
            // lists, the agent's state has it, the same create again is a duplicate),
            // so no later failure may answer the create as failed.
            self.kv.set(&record_key, &to_json(&record)?)?;
            // Slow past the patience, this writer's claim may have been
            // completed by a rival, whose grant was then deleted: the
            // generation moved on, and the record just written must not
            // bring that grant back (the deleter clears it too, once more,
            // after releasing the generation: whichever runs last removes it).
            // Best effort like what follows: the grant exists from the write above.
            if self.current(&generations).is_ok_and(|g| g != generation) {
                let _ = self.kv.delete(&record_key);
            }
            // The job only wakes the agent, whose periodic resync reads the same state:
            // best effort, or a failure here would answer an error for a grant that
            // exists, and its retry `duplicate_grant`.
            let _ = self.enqueue(c, &Job::GrantCreated { grant_id: id, epoch, at: now });
            return Ok(record);
        }
    }

    /// The generations of grant fingerprint `fp` in `epoch`: each delete
    /// releases one, so that the same grant can be created again, with a new
    /// id (a deleted grant's id never names a grant again).
    fn grant_generations<'k>(c: &'k ClusterId, epoch: i64, fp: &'k str) -> Generations<impl Fn(i64) -> String + 'k> {
        Generations { counter: keys::grant_gen(c, epoch, fp), released: move |g| keys::grant_released(c, epoch, fp, g) }
    }

    /// A live grant by id.
    pub fn grant(&self, cluster_id: &ClusterId, grant_id: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        let record: Option<GrantRecord> = self.get_json(&keys::grant(cluster_id, grant_id))?;
        let epoch = self.epoch(cluster_id)?;
        Ok(record.filter(|g| g.epoch == epoch && g.terms.cluster_id == *cluster_id))
    }

    /// Every live grant of the cluster, with its reported status.
    pub fn grants(&self, cluster_id: &ClusterId) -> Result<Vec<GrantWithStatus>, StoreError> {
        let epoch = self.epoch(cluster_id)?;
        self.grants_at(cluster_id, epoch)
    }

    /// The grants of revocation epoch `epoch` (live iff it is the current
    /// one). For a caller that must use one epoch for several decisions, e.g.
    /// a token's `rev` and the grant that justifies it.
    pub fn grants_at(&self, cluster_id: &ClusterId, epoch: i64) -> Result<Vec<GrantWithStatus>, StoreError> {
        self.read_grants(cluster_id, epoch, keys::epoch_grants(cluster_id, epoch), |_| true)
    }

    /// Member `member_id`'s grants of revocation epoch `epoch`: those of
    /// [`Self::grants_at`] that are the member's, read from the member's own
    /// log (a member's capabilities and mints cost what the member has, not
    /// what the cluster has; an epoch older than the member logs is read whole).
    pub fn member_grants_at(
        &self,
        cluster_id: &ClusterId,
        epoch: i64,
        member_id: &MemberId,
    ) -> Result<Vec<GrantWithStatus>, StoreError> {
        // An epoch that began before member logs existed has grants in none: read it whole.
        let log = match self.kv.get(&keys::epoch_member_indexed(cluster_id, epoch))? {
            Some(_) => keys::epoch_member_grants(cluster_id, epoch, member_id),
            None => keys::epoch_grants(cluster_id, epoch),
        };
        self.read_grants(cluster_id, epoch, log, |g| g.terms.member_id == *member_id)
    }

    /// The live records of epoch `epoch` among the ids of `log` that `keep` accepts.
    fn read_grants(
        &self,
        cluster_id: &ClusterId,
        epoch: i64,
        log: String,
        keep: impl Fn(&GrantRecord) -> bool,
    ) -> Result<Vec<GrantWithStatus>, StoreError> {
        let c = cluster_id;
        let ids = self.log(log).distinct(GrantId::parse)?;
        let keys: Vec<String> = ids.iter().flat_map(|id| [keys::grant(c, id), keys::grant_observed(c, id)]).collect();
        let values = self.kv.get_many(&keys)?;
        let mut out = Vec::new();
        for (pair_keys, pair) in keys.chunks(2).zip(values.chunks(2)) {
            let (Some(record), observed) = (&pair[0], &pair[1]) else { continue };
            let grant: GrantRecord = from_json(&pair_keys[0], record)?;
            if grant.epoch != epoch || !keep(&grant) {
                continue;
            }
            // A corrupt status report must not hide the grant: show it as unreported.
            let observed = observed.as_ref().and_then(|b| serde_json::from_slice(b).ok());
            out.push(GrantWithStatus { grant, observed });
        }
        Ok(out)
    }

    /// Delete a live grant. [`StoreError::NotFound`] if there is none with that id.
    pub fn delete_grant(
        &self,
        cluster_id: &ClusterId,
        grant_id: &GrantId,
        now: u64,
    ) -> Result<GrantRecord, StoreError> {
        let c = cluster_id;
        let grant = self.grant(c, grant_id)?.ok_or(StoreError::NotFound("grant"))?;
        let doomed = [keys::grant_observed(c, grant_id), keys::grant(c, grant_id)];
        self.kv.delete_many(&doomed)?;
        let (epoch, fp, generation) = (grant.epoch, &grant.fingerprint, grant.generation);
        if self.release(&Self::grant_generations(c, epoch, fp), generation)? {
            // Again, now that the generation moved on: a slow creator of this
            // generation that wrote the record after the first delete either
            // sees the new generation and removes it, or wrote before this.
            self.kv.delete_many(&doomed)?;
        }
        self.enqueue(c, &Job::GrantDeleted { grant_id: grant.id.clone(), epoch, at: now })?;
        Ok(grant)
    }

    /// Revoke every grant of the cluster at once, by advancing its epoch, then
    /// clear the old epoch's records (best effort: they are dead already).
    pub fn revoke_all(&self, cluster_id: &ClusterId, now: u64) -> Result<Revocation, StoreError> {
        let c = cluster_id;
        let before = self.epoch(c)?;
        let doomed = self.grants_at(c, before)?;
        let epoch = self.kv.increment(&keys::epoch(c), 1)?;
        self.enqueue(c, &Job::RevokeAll { epoch, at: now })?;
        let keys: Vec<String> =
            doomed.iter().flat_map(|g| [keys::grant_observed(c, &g.grant.id), keys::grant(c, &g.grant.id)]).collect();
        // A failure here is not the caller's: the grants are already dead by
        // the epoch, and their records are only garbage now.
        let _ = self.kv.delete_many(&keys);
        Ok(Revocation { revoked: doomed.len(), epoch })
    }

    /// Record what the agent observed for a grant.
    pub fn record_observed(
        &self,
        cluster_id: &ClusterId,
        grant_id: &GrantId,
        observed: &Observed,
    ) -> Result<(), StoreError> {
        Ok(self.kv.set(&keys::grant_observed(cluster_id, grant_id), &to_json(observed)?)?)
    }

    /// Record the agent's results for live grants; results for grants that
    /// are gone (deleted, revoked) are ignored, so a late report never
    /// resurrects anything. Returns how many were recorded.
    pub fn record_reports(&self, cluster_id: &ClusterId, results: &[(GrantId, Observed)]) -> Result<usize, StoreError> {
        let live: HashSet<GrantId> = self.grants(cluster_id)?.into_iter().map(|g| g.grant.id).collect();
        let mut recorded = 0;
        for (grant_id, observed) in results {
            if live.contains(grant_id) {
                self.record_observed(cluster_id, grant_id, observed)?;
                recorded += 1;
            }
        }
        Ok(recorded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::kv::{KeyValue, MemoryKv};
    use crate::model::{Email, Namespace, Role, Scope};
    use crate::store::testing::{CountingClock, FailingKv};
    use std::time::Duration;

    fn spec() -> GrantSpec {
        let ns = Namespace::parse("team-a").unwrap();
        GrantSpec::new(Email::parse("dev@ex.io").unwrap(), Role::View, Scope::Namespace(ns)).unwrap()
    }

    /// At every write of a create, a failure either leaves no grant that
    /// lists (and the create again makes exactly one), or the create has
    /// succeeded: never an error for a grant that exists.
    #[test]
    fn a_create_failing_at_any_write_is_all_or_nothing() {
        let c = ClusterId::parse("c_000000000000000000000001").unwrap();
        let member = MemberId::derive(&["m"]);
        let writes = {
            let kv = FailingKv::new(0);
            Store::new(&kv, &SystemClock).create_grant(&c, &spec(), &member, "admin", 1).unwrap();
            kv.writes.get()
        };
        assert!(writes >= 5, "{writes}");
        for k in 1..=writes {
            let kv = FailingKv::new(k);
            let store = Store::new(&kv, &SystemClock).with_claim_patience(Duration::ZERO);
            let result = store.create_grant(&c, &spec(), &member, "admin", 1);
            let listed = store.grants(&c).unwrap();
            match &result {
                Ok(g) => assert_eq!(listed.iter().map(|l| &l.grant.id).collect::<Vec<_>>(), [&g.id], "write {k}"),
                Err(e) => {
                    assert!(matches!(e, StoreError::Kv(_)), "write {k}: {e}");
                    assert!(listed.is_empty(), "write {k} failed the create, yet the grant lists");
                    let again = store.create_grant(&c, &spec(), &member, "admin", 1).unwrap();
                    let listed: Vec<_> = store.grants(&c).unwrap().into_iter().map(|l| l.grant.id).collect();
                    assert_eq!(listed, [again.id], "write {k}: the retry");
                }
            }
            assert!(matches!(store.create_grant(&c, &spec(), &member, "admin", 1), Err(StoreError::DuplicateGrant)));
        }
    }

    /// At every write of a delete, a failure leaves the grant whole or gone;
    /// then the same grant can be created again, with a new id, without
    /// waiting. One point is allowed a single wait: the delete failed at the
    /// generation's `released` marker, after the record was gone, so its
    /// retry finds nothing to delete, and the next create waits out the
    /// claim patience and completes the claim it cannot tell from a crashed
    /// create (the grant comes back once, under its old id; deleting it
    /// again releases it). A delete that failed after the marker and before
    /// the generation's counter moved once made every later create wait for
    /// good; the delete after the repair here must never wait.
    #[test]
    fn a_delete_failing_at_any_write_leaves_the_grant_creatable_anew() {
        let c = ClusterId::parse("c_000000000000000000000001").unwrap();
        let member = MemberId::derive(&["m"]);
        let ids =
            |store: &Store<'_>| -> Vec<GrantId> { store.grants(&c).unwrap().into_iter().map(|l| l.grant.id).collect() };
        let writes = {
            let kv = FailingKv::new(0);
            let store = Store::new(&kv, &SystemClock);
            let g = store.create_grant(&c, &spec(), &member, "admin", 1).unwrap();
            let before = kv.writes.get();
            store.delete_grant(&c, &g.id, 2).unwrap();
            kv.writes.get() - before
        };
        assert!(writes >= 4, "{writes}");
        let mut waited_once = 0;
        for k in 1..=writes {
            let (kv, clock) = (FailingKv::new(0), CountingClock::default());
            let store = Store::new(&kv, &clock);
            let doomed = store.create_grant(&c, &spec(), &member, "admin", 1).unwrap();
            kv.fail_at.set(kv.writes.get() + k);
            let mut retry_found_nothing = false;
            if store.delete_grant(&c, &doomed.id, 2).is_err() {
                let listed = ids(&store);
                assert!(listed.is_empty() || listed == [doomed.id.clone()], "write {k}: {listed:?}");
                match store.delete_grant(&c, &doomed.id, 3) {
                    Ok(_) => {}
                    Err(StoreError::NotFound(_)) => retry_found_nothing = true,
                    Err(e) => panic!("write {k}: the retry of the delete: {e}"),
                }
            }
            assert!(ids(&store).is_empty(), "write {k}: the grant survived its delete");
            let again = store.create_grant(&c, &spec(), &member, "admin", 3).unwrap();
            assert_eq!(ids(&store), std::slice::from_ref(&again.id), "write {k}");
            if clock.sleeps.get() > 0 {
                assert!(retry_found_nothing && again.id == doomed.id, "write {k}: a create waited");
                waited_once += 1;
            } else {
                assert_ne!(again.id, doomed.id, "write {k}: the deleted grant's id came back");
            }
            // Whatever happened above, the next cycle is clean.
            store.delete_grant(&c, &again.id, 4).unwrap();
            let waits = clock.sleeps.get();
            let third = store.create_grant(&c, &spec(), &member, "admin", 5).unwrap();
            assert_eq!(clock.sleeps.get(), waits, "write {k}: a create after a clean delete waited");
            assert!(third.id != again.id && third.id != doomed.id, "write {k}");
        }
        assert!(waited_once <= 1, "{waited_once} fault points made a create wait");
    }

    /// A member's grants are read from its own log: the same grants as the
    /// cluster's list filtered to the member, and none of another member's.
    /// An epoch that began before member logs existed (no marker, no member
    /// log) is read whole, so an upgrade hides no grant.
    #[test]
    fn a_members_grants_are_its_own_log_or_the_whole_epoch_before_member_logs() {
        let c = ClusterId::parse("c_000000000000000000000001").unwrap();
        let (alice, bob) = (MemberId::derive(&["alice"]), MemberId::derive(&["bob"]));
        let kv = MemoryKv::new();
        let store = Store::new(&kv, &SystemClock);
        let spec = |email: &str, ns: &str| {
            let ns = Namespace::parse(ns).unwrap();
            GrantSpec::new(Email::parse(email).unwrap(), Role::View, Scope::Namespace(ns)).unwrap()
        };
        let a1 = store.create_grant(&c, &spec("a@ex.io", "one"), &alice, "admin", 1).unwrap();
        store.create_grant(&c, &spec("b@ex.io", "one"), &bob, "admin", 1).unwrap();
        let a2 = store.create_grant(&c, &spec("a@ex.io", "two"), &alice, "admin", 1).unwrap();
        store.delete_grant(&c, &a1.id, 2).unwrap();
        let ids = |m: &MemberId| -> Vec<GrantId> {
            store.member_grants_at(&c, 0, m).unwrap().into_iter().map(|g| g.grant.id).collect()
        };
        assert_eq!(ids(&alice), std::slice::from_ref(&a2.id));
        assert_eq!(ids(&bob).len(), 1);
        // As a store written before member logs: no marker, no member log.
        let legacy = kv.clone();
        let member_logs: Vec<String> = kv
            .snapshot()
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| key.contains("/member/") || key.ends_with("/member-indexed"))
            .collect();
        assert!(member_logs.len() >= 3, "{member_logs:?}");
        legacy.delete_many(&member_logs).unwrap();
        let store = Store::new(&legacy, &SystemClock);
        let ids: Vec<GrantId> =
            store.member_grants_at(&c, 0, &alice).unwrap().into_iter().map(|g| g.grant.id).collect();
        assert_eq!(ids, [a2.id]);
    }
}
