//! The error contract: every failure the API can answer, and the one mapping
//! from an error to an HTTP status and the JSON body
//! `{"error": {"code", "message", "field"?}}`.
//!
//! Messages are written for the person who hits them and never contain a
//! token, a key or a credential.

use serde::Serialize;

/// Every error an endpoint can answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(
        "this request is authenticated by the session cookie and changes state, so it must carry the X-CSRF-Token header"
    )]
    CsrfRequired,
    #[error("{0}")]
    NotFound(String),
    #[error("Cluster Access is not enabled on this deployment")]
    AccessUnavailable,
    #[error("method not allowed here")]
    MethodNotAllowed(&'static [&'static str]),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Validation { field: &'static str, message: String },
    #[error("{0}")]
    MemberNotEligible(String),
    #[error("too many requests; retry in {retry_after} seconds")]
    RateLimited { retry_after: u64 },
    /// The deployment lacks a setting this endpoint needs; the message names
    /// it and how to set it (it never carries a value).
    #[error("{0}")]
    NotConfigured(&'static str),
    /// A dependency (the key-value store, a variable) failed. The detail is for
    /// the log, never for the client.
    #[error("the service is temporarily unavailable; retry shortly")]
    Unavailable { detail: String },
}

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub code: &'a str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
}

impl ApiError {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::Validation { field, message: message.into() }
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        ApiError::Malformed(message.into())
    }

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

    /// The stable, snake_case error code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Malformed(_) => "malformed_request",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::CsrfRequired => "csrf_required",
            ApiError::NotFound(_) => "not_found",
            ApiError::AccessUnavailable => "access_unavailable",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::MemberNotEligible(_) => "member_not_eligible",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::NotConfigured(_) => "not_configured",
            ApiError::Unavailable { .. } => "unavailable",
        }
    }

    /// The request field a validation error is about.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ApiError::Validation { field, .. } => Some(field),
            _ => None,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::MethodNotAllowed(allowed) => {
                format!("method not allowed here; use {}", allowed.join(" or "))
            }
            other => other.to_string(),
        }
    }

    /// The JSON body of the response.
    pub fn body(&self) -> Vec<u8> {
        let body = ErrorBody { error: ErrorDetail { code: self.code(), message: self.message(), field: self.field() } };
        serde_json::to_vec(&body)
            .unwrap_or_else(|_| br#"{"error":{"code":"internal","message":"internal error"}}"#.to_vec())
    }

    pub fn duplicate_grant() -> Self {
        ApiError::Conflict {
            code: "duplicate_grant",
            message: "this member already holds exactly this role at this scope on this cluster".into(),
        }
    }

    pub fn cluster_access_unsupported() -> Self {
        ApiError::Conflict {
            code: "cluster_access_unsupported",
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
            assert_eq!((err.status(), err.code()), (status, code));
        }
    }

    #[test]
    fn unavailable_hides_its_detail() {
        let err = ApiError::unavailable("sqlite: disk I/O error at /secret/path");
        assert!(!err.message().contains("sqlite"));
        assert!(!String::from_utf8(err.body()).unwrap().contains("secret"));
    }
}
