//! The one place where a store failure becomes a wire error: its status,
//! its code and the message the person who hit it reads. The store names
//! what went wrong in its own terms ([`StoreError`]) and spells no wire code;
//! every endpoint answers a store failure through this mapping (`?`).

use crate::error::ApiError;
use crate::store::StoreError;
use crate::wire::ErrorCode;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::DuplicateCluster { .. } => {
                ApiError::Conflict { code: ErrorCode::DuplicateCluster, message: e.to_string() }
            }
            StoreError::DuplicateGrant => ApiError::duplicate_grant(),
            StoreError::MemberExists { .. } => {
                ApiError::Conflict { code: ErrorCode::MemberExists, message: e.to_string() }
            }
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::IdentityPinned { email, member_id: id } => ApiError::Forbidden(format!(
                "{} is a member of this organisation through another sign-in account, so this session cannot act                  as them; if the account changed, ask an organisation admin to release the member's sign-in identity                  (PATCH /api/v1/members/{id} with {{\"release_identity\": true}}), then sign in again",
                email
            )),
            StoreError::RateLimited { retry_after } => ApiError::RateLimited { retry_after },
            // The detail is for the log; the client reads "temporarily unavailable".
            StoreError::Kv(_)
            | StoreError::Encode(_)
            | StoreError::Corrupt { .. }
            | StoreError::Contention(_)
            | StoreError::Vanished(_) => ApiError::unavailable(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClusterName, Email};

    #[test]
    fn store_failures_answer_with_their_wire_codes() {
        let email = Email::parse("alice@ex.io").unwrap();
        let cases = [
            (
                StoreError::DuplicateCluster { name: ClusterName::parse("prod").unwrap() },
                409,
                "duplicate_cluster",
                "a cluster named prod is already registered in this organisation",
            ),
            (
                StoreError::DuplicateGrant,
                409,
                "duplicate_grant",
                "this member already holds exactly this role at this scope on this cluster",
            ),
            (
                StoreError::MemberExists { email: email.clone() },
                409,
                "member_exists",
                "alice@ex.io is already in the organisation's directory",
            ),
            (StoreError::NotFound("grant"), 404, "not_found", "grant not found"),
            (StoreError::RateLimited { retry_after: 7 }, 429, "rate_limited", "too many requests; retry in 7 seconds"),
        ];
        for (err, status, code, message) in cases {
            let api = ApiError::from(err);
            assert_eq!((api.status(), api.code().as_str(), api.message().as_str()), (status, code, message));
        }
    }

    #[test]
    fn a_pinned_identity_is_forbidden_and_told_how_to_release_it() {
        let email = Email::parse("alice@ex.io").unwrap();
        let member_id = crate::ids::MemberId::parse("m_0123456789abcdef01234567").unwrap();
        let api = ApiError::from(StoreError::IdentityPinned { email, member_id });
        assert_eq!((api.status(), api.code().as_str()), (403, "forbidden"));
        let message = api.message();
        assert!(message.starts_with("alice@ex.io is a member of this organisation through another sign-in account"));
        assert!(
            message.contains("(PATCH /api/v1/members/m_0123456789abcdef01234567 with {\"release_identity\": true})"),
            "{message}"
        );
    }

    #[test]
    fn store_failures_of_the_service_hide_their_detail() {
        let cases = [
            StoreError::Kv(crate::kv::KvError("sqlite: disk I/O error at /secret/path".into())),
            StoreError::Corrupt { key: "v1/cluster/c_1".into(), reason: "secret".into() },
            StoreError::Encode("secret".into()),
            StoreError::Contention("secret".into()),
            StoreError::Vanished("secret"),
        ];
        for err in cases {
            let api = ApiError::from(err.clone());
            assert_eq!((api.status(), api.code().as_str()), (503, "unavailable"), "{err}");
            assert!(!api.message().contains("secret"), "{err}");
            assert_eq!(api, ApiError::unavailable(&err), "the detail is kept for the log");
        }
    }
}
