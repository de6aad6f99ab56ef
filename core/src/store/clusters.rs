//! Clusters: registration (one live cluster per name and organisation),
//! deletion (revoke, tombstone, revoke again, release the name), agent
//! credentials (a window of write-once slots) and heartbeats. The rules are
//! in [`super`]'s documentation, "Cluster lifecycle".

use super::claim::{Claim, Generations};
use super::{Store, StoreError, from_json, keys, to_json};
use crate::ids::{self, ClusterId, Secret};
use crate::kv::KvError;
use crate::model::{ClusterKind, ClusterName};
use crate::records::{ClusterDeletion, ClusterRecord, CredentialRotation, Heartbeat};

/// How many of a cluster's newest credential slots authentication looks at:
/// a credential older than that is refused whatever its deadline (so at most
/// this many credentials are ever valid at once).
pub const AGENT_CREDENTIAL_WINDOW: i64 = 8;

/// What a registration says about the new cluster.
#[derive(Debug, Clone, Copy)]
pub struct NewCluster<'a> {
    /// The organisation it joins.
    pub org: &'a str,
    /// Its name there.
    pub name: &'a ClusterName,
    /// Standard or sandbox.
    pub kind: ClusterKind,
    /// Where kubectl reaches its access proxy (validated).
    pub proxy_url: &'a str,
    /// The proxy's CA certificates (PEM).
    pub ca_pem: Option<&'a str>,
}

impl Store<'_> {
    /// The id of incarnation `i` of a cluster name (incarnation 0 keeps the
    /// id derived from the organisation and the name alone).
    fn cluster_id(org: &str, name: &ClusterName, incarnation: i64) -> ClusterId {
        match incarnation {
            0 => ClusterId::derive(&[org, name.as_str()]),
            i => ClusterId::derive(&[org, name.as_str(), &i.to_string()]),
        }
    }

    /// The incarnations of a cluster name: each deletion releases one.
    fn name_incarnations<'n>(org: &'n str, name: &'n ClusterName) -> Generations<impl Fn(i64) -> String + 'n> {
        Generations {
            counter: keys::cluster_name_gen(org, name),
            released: move |i| keys::cluster_name_released(org, name, i),
        }
    }

    /// The name's current incarnation.
    fn name_incarnation(&self, org: &str, name: &ClusterName) -> Result<i64, KvError> {
        self.current(&Self::name_incarnations(org, name))
    }

    /// Release incarnation `i` of a name (once, whoever calls it).
    fn release_name(&self, org: &str, name: &ClusterName, incarnation: i64) -> Result<(), KvError> {
        self.release(&Self::name_incarnations(org, name), incarnation).map(drop)
    }

    /// Register a cluster whose agent authenticates with `credential` (only
    /// its hash is stored). [`StoreError::DuplicateCluster`] if the name is taken.
    pub fn register_cluster(
        &self,
        new: NewCluster<'_>,
        credential: &Secret,
        created_by: &str,
        now: u64,
    ) -> Result<ClusterRecord, StoreError> {
        let NewCluster { org, name, .. } = new;
        let id = loop {
            let incarnation = self.name_incarnation(org, name)?;
            let id = Self::cluster_id(org, name, incarnation);
            let claim_key = keys::cluster_name_claim(org, name, incarnation);
            let still_current = || Ok(self.name_incarnation(org, name)? == incarnation);
            match self.claim(&claim_key, &keys::cluster(&id), &still_current)? {
                Claim::Won | Claim::Abandoned => break id,
                Claim::Retry => continue,
                Claim::Exists => {
                    // Deleted, but its deleter died before releasing the name: finish that, and retry.
                    if self.kv.get(&keys::cluster_deleted(&id))?.is_some() {
                        self.release_name(org, name, incarnation)?;
                        continue;
                    }
                    return Err(StoreError::DuplicateCluster { name: name.clone() });
                }
            }
        };
        let record = ClusterRecord {
            id: id.clone(),
            org: org.to_owned(),
            name: name.clone(),
            kind: new.kind,
            proxy_url: new.proxy_url.to_owned(),
            ca_pem: new.ca_pem.map(str::to_owned),
            agent_credential_hash: credential.hash(),
            created_at: now,
            created_by: created_by.to_owned(),
        };
        self.log(keys::org_clusters(org)).append(id.as_str().as_bytes())?;
        self.kv.set(&keys::cluster(&id), &to_json(&record)?)?;
        Ok(record)
    }

    /// A cluster that exists and is not deleted.
    pub fn cluster(&self, id: &ClusterId) -> Result<Option<ClusterRecord>, StoreError> {
        Ok(self.live_clusters(std::slice::from_ref(id))?.pop())
    }

    /// The organisation's clusters that are not deleted, in registration order.
    pub fn clusters(&self, org: &str) -> Result<Vec<ClusterRecord>, StoreError> {
        let ids = self.log(keys::org_clusters(org)).distinct(ClusterId::parse)?;
        let mut clusters = self.live_clusters(&ids)?;
        clusters.retain(|c| c.org == org);
        Ok(clusters)
    }

    /// The records of `ids` that exist and have no tombstone, in order.
    fn live_clusters(&self, ids: &[ClusterId]) -> Result<Vec<ClusterRecord>, StoreError> {
        let keys: Vec<String> = ids.iter().flat_map(|id| [keys::cluster(id), keys::cluster_deleted(id)]).collect();
        let values = self.kv.get_many(&keys)?;
        let mut out = Vec::new();
        for (key, pair) in keys.chunks(2).zip(values.chunks(2)) {
            if let [Some(bytes), None] = pair {
                out.push(from_json(&key[0], bytes)?);
            }
        }
        Ok(out)
    }

    /// Delete a cluster: revoke everything, tombstone it, revoke again,
    /// release its name, then clear what is left (see [`super`]'s documentation).
    pub fn delete_cluster(&self, cluster: &ClusterRecord, by: &str, now: u64) -> Result<(), StoreError> {
        let c = &cluster.id;
        // Revoke before the tombstone, so that a failure leaves a cluster that a retry can delete,
        // and again after it, so that a grant created or a token minted while the tombstone was
        // being written belongs to a dead epoch too.
        self.revoke_all(c, now)?;
        self.kv.set(&keys::cluster_deleted(c), &to_json(&ClusterDeletion { by: by.to_owned(), at: now })?)?;
        self.revoke_all(c, now)?;
        let incarnation = self.name_incarnation(&cluster.org, &cluster.name)?;
        if Self::cluster_id(&cluster.org, &cluster.name, incarnation) == *c {
            self.release_name(&cluster.org, &cluster.name, incarnation)?;
        }
        // Garbage now (nothing reads it without the cluster); a failure here is not the caller's.
        let _ = self.clear_cluster_leftovers(c);
        Ok(())
    }

    /// Delete the jobs, the heartbeat and the credential slots of a deleted cluster.
    fn clear_cluster_leftovers(&self, c: &ClusterId) -> Result<(), KvError> {
        let mut keys = vec![keys::heartbeat(c), keys::jobs_acked(c)];
        let jobs = self.log(keys::jobs(c));
        keys.extend((1..=jobs.last()?).map(|n| jobs.slot(n)));
        let credentials = self.log(keys::credentials(c));
        let slots = credentials.last()?;
        keys.extend((0..=slots).map(|n| keys::credential_used(c, n)));
        keys.extend((1..=slots).map(|n| credentials.slot(n)));
        self.kv.delete_many(&keys)
    }

    // ----- agent credentials ------------------------------------------------

    /// Make `credential` the cluster's newest agent credential; every older
    /// one stays valid until `previous_valid_until` (unix seconds) or until
    /// the agent authenticates with this one, whichever comes first. Only its
    /// hash is stored.
    pub fn rotate_agent_credential(
        &self,
        cluster_id: &ClusterId,
        credential: &Secret,
        created_by: &str,
        previous_valid_until: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        let rotation = CredentialRotation {
            hash: credential.hash(),
            created_at: now,
            created_by: created_by.to_owned(),
            previous_valid_until,
        };
        self.log(keys::credentials(cluster_id)).append(&to_json(&rotation)?)?;
        Ok(())
    }

    /// Whether `credential` is a valid agent credential of `cluster` at `now`
    /// (the rule is in [`super`]'s documentation). Authenticating with a
    /// credential for the first time retires every older one.
    pub fn check_agent_credential(
        &self,
        cluster: &ClusterRecord,
        credential: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        struct Slot {
            n: i64,
            hash: String,
            /// 0 for slot 0, which is never newer than another.
            previous_valid_until: u64,
            used: bool,
        }
        let c = &cluster.id;
        let log = self.log(keys::credentials(c));
        let newest = log.last()?;
        let oldest = newest.saturating_sub(AGENT_CREDENTIAL_WINDOW - 1).max(0);
        let keys: Vec<String> = (oldest..=newest).flat_map(|n| [log.slot(n), keys::credential_used(c, n)]).collect();
        let values = self.kv.get_many(&keys)?;
        let mut slots = Vec::new();
        for ((n, key), pair) in (oldest..=newest).zip(keys.chunks(2)).zip(values.chunks(2)) {
            let used = pair[1].is_some();
            if n == 0 {
                slots.push(Slot { n, hash: cluster.agent_credential_hash.clone(), previous_valid_until: 0, used });
            } else if let Some(bytes) = &pair[0] {
                // A slot whose writer is still writing (or died) is skipped.
                let rotation: CredentialRotation = from_json(&key[0], bytes)?;
                slots.push(Slot { n, hash: rotation.hash, previous_valid_until: rotation.previous_valid_until, used });
            }
        }
        let presented = ids::secret_hash(credential);
        let Some(at) = slots.iter().position(|s| ids::ct_eq(&s.hash, &presented)) else {
            return Ok(false);
        };
        let newer = &slots[at + 1..];
        let superseded = newer.iter().any(|s| s.used || now >= s.previous_valid_until);
        if superseded {
            return Ok(false);
        }
        let slot = &slots[at];
        if !slot.used && slot.n > 0 {
            self.kv.set(&keys::credential_used(c, slot.n), b"1")?;
        }
        Ok(true)
    }

    // ----- heartbeats ---------------------------------------------------------

    /// The agent's last heartbeat.
    pub fn heartbeat(&self, cluster_id: &ClusterId) -> Result<Option<Heartbeat>, StoreError> {
        self.get_json(&keys::heartbeat(cluster_id))
    }

    /// Record a heartbeat of the agent.
    pub fn record_heartbeat(&self, cluster_id: &ClusterId, beat: &Heartbeat) -> Result<(), StoreError> {
        Ok(self.kv.set(&keys::heartbeat(cluster_id), &to_json(beat)?)?)
    }

    /// Whether the cluster's agent has sent a heartbeat within `offline_after` seconds.
    pub fn agent_online(&self, cluster_id: &ClusterId, now: u64, offline_after: u64) -> Result<bool, StoreError> {
        Ok(self.heartbeat(cluster_id)?.is_some_and(|h| h.is_fresh(now, offline_after)))
    }
}
