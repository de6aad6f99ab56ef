//! The error contract: every failure the API can answer, and the one mapping
//! from an error to an HTTP status and the JSON body
//! `{"error": {"code", "message", "field"?}}`.
//!
//! Messages are written for the person who hits them and never contain a
//! token, a key or a credential.

use crate::method::Method;
use crate::wire::{ErrorBody, ErrorCode, ErrorDetail};

/// Every error an endpoint can answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is not what the endpoint reads (the message says how).
    #[error("{0}")]
    Malformed(String),
    /// 401: no valid session or credential (the message says why).
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: authenticated, but not allowed (the message says who may).
    #[error("{0}")]
    Forbidden(String),
    /// 403: a cookie-authenticated write without the CSRF header.
    #[error(
        "this request is authenticated by the session cookie and changes state, so it must carry the X-CSRF-Token header"
    )]
    CsrfRequired,
    /// 404: no such thing, or another organisation's.
    #[error("{0}")]
    NotFound(String),
    /// 404: the access gateway is switched off.
    #[error("Cluster Access is not enabled on this deployment")]
    AccessUnavailable,
    /// 405: the route serves only these methods.
    #[error("method not allowed here")]
    MethodNotAllowed(&'static [Method]),
    /// 409: the request conflicts with what exists (`code` says how).
    #[error("{message}")]
    Conflict {
        /// Which conflict.
        code: ErrorCode,
        /// What exists, and what to do.
        message: String,
    },
    /// 413: the body is longer than the endpoint reads.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The endpoint's limit in bytes.
        limit: usize,
    },
    /// 415: the body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: a field is invalid.
    #[error("{message}")]
    Validation {
        /// The field.
        field: &'static str,
        /// What is wrong with it and what it should be.
        message: String,
    },
    /// 422: the member cannot hold a grant.
    #[error("{0}")]
    MemberNotEligible(String),
    /// 429: try again in `retry_after` seconds.
    #[error("too many requests; retry in {retry_after} seconds")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after: u64,
    },
    /// The deployment lacks a setting this endpoint needs; the message names
    /// it and how to set it (it never carries a value).
    #[error("{0}")]
    NotConfigured(&'static str),
    /// A dependency (the key-value store, a variable) failed. The detail is for
    /// the log, never for the client.
    #[error("the service is temporarily unavailable; retry shortly")]
    Unavailable {
        /// What failed, for the log.
        detail: String,
    },
}

impl ApiError {
    /// A validation error of `field`.
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::Validation { field, message: message.into() }
    }

    /// `{what} not found`.
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    /// A malformed request.
    pub fn malformed(message: impl Into<String>) -> Self {
        ApiError::Malformed(message.into())
    }

    /// A failed dependency; `detail` goes to the log only.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        ApiError::Unavailable { detail: detail.to_string() }
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Malformed(_) => 400,
            ApiError::Unauthenticated(_) => 401,
            ApiError::Forbidden(_) | ApiError::CsrfRequired => 403,
            ApiError::NotFound(_) | ApiError::AccessUnavailable => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Validation { .. } | ApiError::MemberNotEligible(_) => 422,
            ApiError::RateLimited { .. } => 429,
            ApiError::NotConfigured(_) | ApiError::Unavailable { .. } => 503,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Malformed(_) => ErrorCode::MalformedRequest,
            ApiError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::CsrfRequired => ErrorCode::CsrfRequired,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::AccessUnavailable => ErrorCode::AccessUnavailable,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::Conflict { code, .. } => *code,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::Validation { .. } => ErrorCode::ValidationFailed,
            ApiError::MemberNotEligible(_) => ErrorCode::MemberNotEligible,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::NotConfigured(_) => ErrorCode::NotConfigured,
            ApiError::Unavailable { .. } => ErrorCode::Unavailable,
        }
    }

    /// The request field a validation error is about.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ApiError::Validation { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The message for the person who hit it.
    pub fn message(&self) -> String {
        match self {
            ApiError::MethodNotAllowed(allowed) => {
                let names: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
                format!("method not allowed here; use {}", names.join(" or "))
            }
            other => other.to_string(),
        }
    }

    /// The JSON body of the response.
    pub fn body(&self) -> Vec<u8> {
        let body = ErrorBody {
            error: ErrorDetail { code: self.code(), message: self.message(), field: self.field().map(str::to_owned) },
        };
        serde_json::to_vec(&body)
            .unwrap_or_else(|_| br#"{"error":{"code":"internal","message":"internal error"}}"#.to_vec())
    }

    /// Exactly this grant exists.
    pub fn duplicate_grant() -> Self {
        ApiError::Conflict {
            code: ErrorCode::DuplicateGrant,
            message: "this member already holds exactly this role at this scope on this cluster".into(),
        }
    }

    /// A sandbox cluster was asked for Cluster Access.
    pub fn cluster_access_unsupported() -> Self {
        ApiError::Conflict {
            code: ErrorCode::ClusterAccessUnsupported,
            message: "sandbox clusters do not support Cluster Access".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_code_message_and_field_only_for_validation() {
        let v: serde_json::Value =
            serde_json::from_slice(&ApiError::validation("namespace", "must not be empty").body()).unwrap();
        assert_eq!(v["error"]["code"], "validation_failed");
        assert_eq!(v["error"]["field"], "namespace");
        assert_eq!(v["error"]["message"], "must not be empty");

        let v: serde_json::Value = serde_json::from_slice(&ApiError::CsrfRequired.body()).unwrap();
        assert_eq!(v["error"]["code"], "csrf_required");
        assert!(v["error"].get("field").is_none());
    }

    #[test]
    fn statuses_follow_the_contract() {
        let cases = [
            (ApiError::malformed("x"), 400, "malformed_request"),
            (ApiError::Unauthenticated("x".into()), 401, "unauthenticated"),
            (ApiError::Forbidden("x".into()), 403, "forbidden"),
            (ApiError::CsrfRequired, 403, "csrf_required"),
            (ApiError::not_found("cluster"), 404, "not_found"),
            (ApiError::AccessUnavailable, 404, "access_unavailable"),
            (ApiError::duplicate_grant(), 409, "duplicate_grant"),
            (ApiError::cluster_access_unsupported(), 409, "cluster_access_unsupported"),
            (ApiError::PayloadTooLarge { limit: 1 }, 413, "payload_too_large"),
            (ApiError::validation("role", "x"), 422, "validation_failed"),
            (ApiError::MemberNotEligible("x".into()), 422, "member_not_eligible"),
            (ApiError::NotConfigured("x"), 503, "not_configured"),
        ];
        for (err, status, code) in cases {
            assert_eq!((err.status(), err.code().as_str()), (status, code));
        }
    }

    #[test]
    fn unavailable_hides_its_detail() {
        let err = ApiError::unavailable("sqlite: disk I/O error at /secret/path");
        assert!(!err.message().contains("sqlite"));
        assert!(!String::from_utf8(err.body()).unwrap().contains("secret"));
    }
}
