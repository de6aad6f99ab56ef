//! The directory: members as their own sign-ins, an admin's invitations and
//! deactivations write them (each writer its own key), the pin of a member
//! to the (issuer, subject) of their first sign-in, and deactivation, which
//! ends a member's access on every cluster. The rules are in [`super`]'s
//! documentation.

use std::collections::HashSet;

use super::claim::{Claim, Generations};
use super::{Store, StoreError, from_json, keys, to_json};
use crate::identity::Identity;
use crate::ids::MemberId;
use crate::model::{Email, MemberStatus};
use crate::records::{Deactivation, Invite, Member, MemberProfile, Pin};

/// How often a sign-in starts over on a pin whose generation moved under it
/// before it fails with [`StoreError::Contention`]: each restart means another writer made
/// progress, so this is never reached in practice.
const PIN_ATTEMPTS: usize = 16;

/// The member id of an email in an organisation: stable, so an invite and the
/// later sign-in meet at the same record.
pub fn member_id(org: &str, email: &Email) -> MemberId {
    MemberId::derive(&[org, email.as_str()])
}

/// Whether `pin` is the (issuer, subject) of `identity`.
fn pin_is(pin: &Pin, identity: &Identity) -> bool {
    pin.issuer == identity.issuer && pin.subject == identity.subject
}

impl Store<'_> {
    /// Record a signed-in identity in the directory (on first sign-in, or when
    /// its email, name or role changed) and return its status. The member is
    /// pinned to the first (issuer, subject) that signs in with its email; a
    /// session of another identity is refused until an admin releases the pin
    /// ([`Store::release_identity`]).
    pub fn admit(&self, identity: &Identity, now: u64) -> Result<Member, StoreError> {
        let org = &identity.org;
        let id = member_id(org, &identity.email);
        let generation = self.current(&Self::pins(org, &id))?;
        let keys = [keys::member(org, &id), keys::member_deactivated(org, &id), keys::pin(org, &id, generation)];
        let values = self.kv.get_many(&keys)?;
        let existing: Option<MemberProfile> = values[0].as_deref().map(|b| from_json(&keys[0], b)).transpose()?;
        let pinned = match values[2].as_deref().map(|b| from_json::<Pin>(&keys[2], b)).transpose()? {
            Some(pin) => pin_is(&pin, identity),
            None => self.pin(org, &id, identity, existing.as_ref(), now)?,
        };
        if !pinned {
            return Err(StoreError::IdentityPinned { email: identity.email.clone(), member_id: id });
        }
        let joined_at = existing.as_ref().map_or(now, |p| p.joined_at);
        let profile = MemberProfile {
            id: id.clone(),
            email: identity.email.clone(),
            name: identity.name.clone(),
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            role: identity.role,
            joined_at,
        };
        if existing.as_ref() != Some(&profile) {
            if existing.is_none() {
                // Slot first: a crash after it leaves a slot without a record, which readers skip.
                self.log(keys::org_members(org)).append(id.as_str().as_bytes())?;
            }
            self.kv.set(&keys[0], &to_json(&profile)?)?;
        }
        let deactivated = values[1].is_some();
        Ok(Member {
            id,
            email: profile.email,
            name: profile.name,
            status: if deactivated { MemberStatus::Deactivated } else { MemberStatus::Active },
            role: Some(profile.role),
        })
    }

    /// Pin member `id` to `identity` if its current pin generation has no pin
    /// yet, and say whether the member is (now) pinned to `identity`. A
    /// member who signed in before pins existed is pinned to the identity of
    /// its profile, not to whoever signs in first after the upgrade.
    fn pin(
        &self,
        org: &str,
        id: &MemberId,
        identity: &Identity,
        profile: Option<&MemberProfile>,
        now: u64,
    ) -> Result<bool, StoreError> {
        let pins = Self::pins(org, id);
        for _ in 0..PIN_ATTEMPTS {
            let generation = self.current(&pins)?;
            let pin_key = keys::pin(org, id, generation);
            if let Some(pin) = self.get_json::<Pin>(&pin_key)? {
                return Ok(pin_is(&pin, identity));
            }
            let still_current = || Ok(self.current(&pins)? == generation);
            match self.claim(&keys::pin_claim(org, id, generation), &pin_key, &still_current)? {
                Claim::Exists | Claim::Retry => continue,
                Claim::Abandoned => self.release_pin(org, id, generation)?,
                Claim::Won => {
                    let pin = match profile.filter(|_| generation == 0) {
                        Some(p) => Pin { issuer: p.issuer.clone(), subject: p.subject.clone(), at: now },
                        None => Pin { issuer: identity.issuer.clone(), subject: identity.subject.clone(), at: now },
                    };
                    self.kv.set(&pin_key, &to_json(&pin)?)?;
                    // A claim given up as abandoned meanwhile holds nothing: start over.
                    if still_current()? {
                        return Ok(pin_is(&pin, identity));
                    }
                }
            }
        }
        Err(StoreError::Contention(format!("the pin of {id} kept moving; gave up after {PIN_ATTEMPTS} attempts")))
    }

    /// The generations of a member's pin: each release (by an admin, or of
    /// an abandoned claim) moves it on.
    fn pins<'k>(org: &'k str, id: &'k MemberId) -> Generations<impl Fn(i64) -> String + 'k> {
        Generations { counter: keys::pin_gen(org, id), released: move |g| keys::pin_released(org, id, g) }
    }

    /// Give up pin generation `generation` (once, whoever else tries too).
    fn release_pin(&self, org: &str, id: &MemberId, generation: i64) -> Result<(), StoreError> {
        self.release(&Self::pins(org, id), generation)?;
        Ok(())
    }

    /// Release a member's sign-in identity: the next sign-in with the
    /// member's email pins it again, and takes over the member with its
    /// grants and status. For an account that changed at the identity
    /// provider; [`StoreError::NotFound`] if there is no such member.
    pub fn release_identity(&self, org: &str, id: &MemberId) -> Result<Member, StoreError> {
        let member = self.member(org, id)?.ok_or(StoreError::NotFound("member"))?;
        let generation = self.current(&Self::pins(org, id))?;
        if self.kv.get(&keys::pin(org, id, generation))?.is_some() {
            self.release_pin(org, id, generation)?;
        }
        Ok(member)
    }

    /// The three keys a member's directory entry is read from.
    fn member_keys(org: &str, id: &MemberId) -> [String; 3] {
        [keys::member(org, id), keys::member_invite(org, id), keys::member_deactivated(org, id)]
    }

    /// A member's directory entry, whatever their status.
    pub fn member(&self, org: &str, id: &MemberId) -> Result<Option<Member>, StoreError> {
        let keys = Self::member_keys(org, id);
        let values = self.kv.get_many(&keys)?;
        Self::member_from(&keys, id, &values)
    }

    fn member_from(keys: &[String], id: &MemberId, values: &[Option<Vec<u8>>]) -> Result<Option<Member>, StoreError> {
        let profile: Option<MemberProfile> = values[0].as_deref().map(|b| from_json(&keys[0], b)).transpose()?;
        let invite: Option<Invite> = values[1].as_deref().map(|b| from_json(&keys[1], b)).transpose()?;
        let deactivated = values[2].is_some();
        let (email, name, role, signed_in) = match (profile, invite) {
            (Some(p), _) => (p.email, p.name, Some(p.role), true),
            (None, Some(i)) => (i.email, None, None, false),
            (None, None) => return Ok(None),
        };
        let status = match (deactivated, signed_in) {
            (true, _) => MemberStatus::Deactivated,
            (false, true) => MemberStatus::Active,
            (false, false) => MemberStatus::Invited,
        };
        Ok(Some(Member { id: id.clone(), email, name, status, role }))
    }

    /// The member of an email, whatever their status.
    pub fn member_by_email(&self, org: &str, email: &Email) -> Result<Option<Member>, StoreError> {
        self.member(org, &member_id(org, email))
    }

    /// The whole directory of an organisation.
    pub fn members(&self, org: &str) -> Result<Vec<Member>, StoreError> {
        let ids = self.log(keys::org_members(org)).distinct(MemberId::parse)?;
        let keys: Vec<String> = ids.iter().flat_map(|id| Self::member_keys(org, id)).collect();
        let values = self.kv.get_many(&keys)?;
        let mut out = Vec::new();
        for ((id, k), v) in ids.iter().zip(keys.chunks(3)).zip(values.chunks(3)) {
            if let Some(m) = Self::member_from(k, id, v)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Invite an email to the organisation. [`StoreError::MemberExists`] if already known.
    pub fn invite(&self, org: &str, email: &Email, by: &str, now: u64) -> Result<Member, StoreError> {
        let id = member_id(org, email);
        if self.member(org, &id)?.is_some() {
            return Err(StoreError::MemberExists { email: email.clone() });
        }
        self.log(keys::org_members(org)).append(id.as_str().as_bytes())?;
        let invite = Invite { email: email.clone(), invited_by: by.to_owned(), at: now };
        self.kv.set(&keys::member_invite(org, &id), &to_json(&invite)?)?;
        self.member(org, &id)?.ok_or(StoreError::Vanished("invite vanished right after it was written"))
    }

    /// Deactivate (or reactivate) a member.
    ///
    /// Deactivation ends access at once: the marker is written first, and
    /// from that instant the cluster's access state leaves out the member's
    /// grants ([`Store::deactivated_members`]); then every grant of the member
    /// on the organisation's clusters is deleted, each with a job that makes
    /// the agent remove its binding. Reactivation first deletes whatever a
    /// failed deactivation or a racing create left behind, and only then lifts
    /// the marker, so it never revives old access: an admin grants again.
    /// Both are idempotent, so a failed request is completed by retrying it.
    pub fn set_deactivated(
        &self,
        org: &str,
        id: &MemberId,
        deactivated: bool,
        by: &str,
        now: u64,
    ) -> Result<Member, StoreError> {
        if self.member(org, id)?.is_none() {
            return Err(StoreError::NotFound("member"));
        }
        let key = keys::member_deactivated(org, id);
        if deactivated {
            self.kv.set(&key, &to_json(&Deactivation { by: by.to_owned(), at: now })?)?;
            self.delete_member_grants(org, id, now)?;
        } else {
            self.delete_member_grants(org, id, now)?;
            self.kv.delete(&key)?;
        }
        self.member(org, id)?.ok_or(StoreError::NotFound("member"))
    }

    /// Delete every live grant of a member on the organisation's clusters;
    /// returns how many this call deleted.
    fn delete_member_grants(&self, org: &str, member_id: &MemberId, now: u64) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for cluster in self.clusters(org)? {
            for g in self.grants(&cluster.id)? {
                if g.grant.terms.member_id != *member_id {
                    continue;
                }
                match self.delete_grant(&cluster.id, &g.grant.id, now) {
                    Ok(_) => deleted += 1,
                    // Deleted meanwhile by someone else: just as good.
                    Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(deleted)
    }

    /// Which of `member_ids` are deactivated in `org` (one batch read).
    pub fn deactivated_members(&self, org: &str, member_ids: &[&MemberId]) -> Result<HashSet<MemberId>, StoreError> {
        let keys: Vec<String> = member_ids.iter().map(|m| keys::member_deactivated(org, m)).collect();
        let values = self.kv.get_many(&keys)?;
        Ok(member_ids.iter().zip(values).filter(|(_, v)| v.is_some()).map(|(m, _)| (*m).clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OrgRole;
    use crate::store::testing::{CountingClock, FailingKv};

    fn identity(issuer: &str, subject: &str) -> Identity {
        Identity {
            issuer: issuer.into(),
            subject: subject.into(),
            email: Email::parse("moved@ex.io").unwrap(),
            name: None,
            org: "acme".into(),
            role: OrgRole::Member,
            expires_at: u64::MAX,
        }
    }

    /// At every write of an admin's identity release, a failure either
    /// releases the pin or leaves it, and the release again completes it: the
    /// next sign-in of the new identity takes the member over. A release that
    /// failed after its `released` marker and before the pin's counter moved
    /// once could never be completed (the retry found the marker taken and
    /// left the counter where it was), so the old identity kept the member.
    #[test]
    fn a_release_failing_at_any_write_is_completed_by_its_retry() {
        let (old, new) = (identity("https://old-idp", "u-1"), identity("https://new-idp", "u-9"));
        let writes = {
            let (kv, clock) = (FailingKv::new(0), CountingClock::default());
            let store = Store::new(&kv, &clock);
            let m = store.admit(&old, 1).unwrap();
            let before = kv.writes.get();
            store.release_identity("acme", &m.id).unwrap();
            kv.writes.get() - before
        };
        assert!(writes >= 2, "{writes}");
        for k in 1..=writes {
            let (kv, clock) = (FailingKv::new(0), CountingClock::default());
            let store = Store::new(&kv, &clock);
            let m = store.admit(&old, 1).unwrap();
            kv.fail_at.set(kv.writes.get() + k);
            if store.release_identity("acme", &m.id).is_err() {
                store.release_identity("acme", &m.id).unwrap();
            }
            assert_eq!(store.admit(&new, 2).unwrap().id, m.id, "write {k}: the new identity is refused");
            assert!(store.admit(&old, 3).is_err(), "write {k}: the old identity still signs in");
            assert_eq!(clock.sleeps.get(), 0, "write {k}: a sign-in waited on a claim");
        }
    }
}
