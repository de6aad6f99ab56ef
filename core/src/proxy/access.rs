//! Who a request acts as: the verified token against what the proxy last
//! learnt from the control plane (the cluster's revocation epoch, the users
//! with a live grant, the keys that sign tokens).

use std::collections::HashSet;
use std::sync::Arc;

use super::status::Refusal;
use super::verified::VerifiedTokens;
use crate::http::Bearer;
use crate::ids::{ClusterId, MemberId};
use crate::token::{TokenError, Verifier};
use crate::wire::AccessState;

/// The cluster's access as of the proxy's last sync with the control plane.
pub struct AccessView {
    cluster_id: ClusterId,
    epoch: i64,
    users: HashSet<String>,
    verifier: Arc<Verifier>,
    synced_at: u64,
}

/// A request the proxy forwards, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The member the token was minted for.
    pub member_id: MemberId,
    /// Their Kubernetes user name: the one their bindings name, and the one impersonated.
    pub user: String,
    /// Their email, for the audit record.
    pub email: String,
    /// When the token expires (unix seconds).
    pub expires_at: u64,
}

impl AccessView {
    /// The view of `state` (the agent API's access state) with `verifier`
    /// (the control plane's published keys, parsed once per JWKS refresh),
    /// synced at `synced_at` (unix seconds).
    pub fn new(state: &AccessState, verifier: Arc<Verifier>, synced_at: u64) -> AccessView {
        AccessView {
            cluster_id: state.cluster_id.clone(),
            epoch: state.revocation_epoch,
            users: state.grants.iter().map(|g| g.user.clone()).collect(),
            verifier,
            synced_at,
        }
    }

    /// When the state was last synced (unix seconds).
    pub fn synced_at(&self) -> u64 {
        self.synced_at
    }

    /// The cluster's revocation epoch in this view.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// How many users hold a live grant.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// How old the view is at `now`, in seconds.
    pub fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.synced_at)
    }

    /// Admit a request that presents `bearer` at `now`, or refuse it: a view
    /// older than `max_staleness` seconds refuses everything (it cannot know
    /// about revocations since); otherwise the token must verify for this
    /// cluster (its signature checked once, through `tokens`), be unexpired
    /// and minted at or after the view's epoch, and its user must hold a live
    /// grant.
    pub fn admit(
        &self,
        bearer: Bearer<'_>,
        now: u64,
        max_staleness: u64,
        tokens: &VerifiedTokens,
    ) -> Result<Admitted, Refusal> {
        let age = self.age(now);
        if age > max_staleness {
            return Err(Refusal::Stale { age_seconds: age, limit_seconds: max_staleness });
        }
        let token = match bearer {
            Bearer::Token(token) => token,
            Bearer::Absent | Bearer::Malformed => return Err(Refusal::NoToken),
        };
        let verified = tokens.verify(&self.verifier, token, &self.cluster_id, now).map_err(Refusal::Token)?;
        if verified.claims.rev < self.epoch {
            return Err(Refusal::Token(TokenError::Revoked));
        }
        if !self.users.contains(&verified.claims.user) {
            return Err(Refusal::NoGrant);
        }
        Ok(Admitted {
            member_id: verified.member_id,
            user: verified.claims.user,
            email: verified.claims.email,
            expires_at: verified.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::GrantId;
    use crate::model::{Email, Role};
    use crate::rbac::{DesiredGrant, kube_user};
    use crate::token::{SigningKeys, TokenClaims};

    const NOW: u64 = 1_800_000_000;

    struct World {
        keys: SigningKeys,
        cluster: ClusterId,
        member: MemberId,
        user: String,
    }

    impl World {
        fn new() -> World {
            let jwk = crate::dev::new_key(&crate::random::SystemRandom).unwrap().to_jwk();
            World {
                keys: SigningKeys::parse(&format!("[{jwk}]")).unwrap(),
                cluster: ClusterId::derive(&["prod"]),
                member: MemberId::derive(&["dev"]),
                user: kube_user(&Email::parse("dev@ex.io").unwrap()),
            }
        }

        fn token(&self, rev: i64, cluster: &ClusterId) -> String {
            let claims = TokenClaims { rev, user: self.user.clone(), email: "dev@ex.io".into() };
            self.keys.mint(&self.member, cluster, claims, 900, NOW).unwrap().0
        }

        fn view(&self, epoch: i64, granted: bool, synced_at: u64) -> AccessView {
            let grants = if granted {
                vec![DesiredGrant {
                    id: GrantId::derive(&["g"]),
                    user: self.user.clone(),
                    role: Role::View,
                    namespace: None,
                }]
            } else {
                Vec::new()
            };
            let state = AccessState { cluster_id: self.cluster.clone(), revocation_epoch: epoch, grants };
            AccessView::new(&state, Arc::new(Verifier::from_jwks(&self.keys.jwks())), synced_at)
        }
    }

    #[test]
    fn a_live_grant_and_a_current_token_admit_as_the_member() {
        let w = World::new();
        let token = w.token(3, &w.cluster);
        let admitted =
            w.view(3, true, NOW).admit(Bearer::Token(&token), NOW + 1, 30, &VerifiedTokens::default()).unwrap();
        assert_eq!((admitted.member_id, admitted.user.as_str()), (w.member.clone(), w.user.as_str()));
    }

    #[test]
    fn revocation_a_lost_grant_another_cluster_and_no_token_refuse() {
        let w = World::new();
        let token = w.token(3, &w.cluster);
        let refuse =
            |view: &AccessView, bearer| view.admit(bearer, NOW + 1, 30, &VerifiedTokens::default()).unwrap_err();
        assert_eq!(refuse(&w.view(4, true, NOW), Bearer::Token(&token)), Refusal::Token(TokenError::Revoked));
        assert_eq!(refuse(&w.view(3, false, NOW), Bearer::Token(&token)), Refusal::NoGrant);
        let elsewhere = w.token(3, &ClusterId::derive(&["staging"]));
        assert_eq!(refuse(&w.view(3, true, NOW), Bearer::Token(&elsewhere)), Refusal::Token(TokenError::WrongCluster));
        assert_eq!(refuse(&w.view(3, true, NOW), Bearer::Absent), Refusal::NoToken);
        assert_eq!(refuse(&w.view(3, true, NOW), Bearer::Malformed), Refusal::NoToken);
        let expired = w
            .view(3, true, NOW + 1_000)
            .admit(Bearer::Token(&token), NOW + 1_000, 30, &VerifiedTokens::default())
            .unwrap_err();
        assert_eq!(expired, Refusal::Token(TokenError::Expired));
    }

    #[test]
    fn a_stale_view_refuses_everything() {
        let w = World::new();
        let token = w.token(3, &w.cluster);
        let view = w.view(3, true, NOW);
        assert!(view.admit(Bearer::Token(&token), NOW + 30, 30, &VerifiedTokens::default()).is_ok(), "at the limit");
        let err = view.admit(Bearer::Token(&token), NOW + 31, 30, &VerifiedTokens::default()).unwrap_err();
        assert_eq!(err, Refusal::Stale { age_seconds: 31, limit_seconds: 30 });
    }
}
