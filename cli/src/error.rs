//! The CLI's errors and the one place they become exit codes.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other error: transport, a local file, the server failing (5xx), rate limited (429), `access status --wait` ending with failed grants or timing out |
//! | 2 | usage: bad arguments (clap's own errors), a confirmation refused or impossible, or an argument the server refused (400/422) |
//! | 3 | not logged in, sign-in refused or timed out, the session ended and cannot be renewed, or the control plane rejected the session (401) |
//! | 4 | forbidden (403) |
//! | 5 | not found (404): a cluster, a grant, a kubeconfig entry |
//! | 6 | conflict (409) |
//!
//! Every message says what to do next. No message ever contains a token:
//! API errors carry the server's message (which never echoes credentials),
//! and transport errors name only the URL.

use std::fmt;
use std::path::PathBuf;

use lanyard_core::wire::ErrorCode;

use crate::output::escape;

/// Exit codes scripts can rely on.
pub mod exit {
    pub const OK: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNAUTHENTICATED: u8 = 3;
    pub const FORBIDDEN: u8 = 4;
    pub const NOT_FOUND: u8 = 5;
    pub const CONFLICT: u8 = 6;
}

/// An error the control plane answered with: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The error code ([`ErrorCode::Unknown`] when the body was not Lanyard's).
    pub code: ErrorCode,
    /// The server's message.
    pub message: String,
    /// The field a validation error is about.
    pub field: Option<String>,
    /// Seconds from `Retry-After`, on a 429.
    pub retry_after: Option<u64>,
}

/// The server's text is shown with its control characters escaped, line
/// breaks included, so that it stays on its line ([`escape`]).
impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} {})", escape(&self.message), self.status, self.code)?;
        if let Some(field) = &self.field {
            write!(f, " [field: {}]", escape(field))?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or a refused confirmation (exit 2).
    #[error("{0}")]
    Usage(String),
    /// No session in the config (exit 3).
    #[error("not logged in ({config}): run `lanyard login --control-plane URL` (or `--dev --email E` in the local run)", config = .0.display())]
    NotLoggedIn(PathBuf),
    /// Signing in with the identity provider failed or was refused (exit 3).
    #[error("{0}")]
    SignIn(String),
    /// The session has expired and cannot be renewed silently (exit 3). One
    /// line: it is what kubectl shows when the exec plugin fails.
    #[error("your session has ended ({why}): run `lanyard login{}`", .control_plane.as_deref().map(|c| format!(" --control-plane {c}")).unwrap_or_default())]
    SessionEnded { why: String, control_plane: Option<String> },
    /// Logged in, but to another control plane than the one asked for (exit 3).
    #[error("{0}")]
    OtherControlPlane(String),
    /// The control plane answered with an error.
    #[error("{api}{hint}", hint = .hint.as_deref().map(|h| format!("\n{h}")).unwrap_or_default())]
    Api { api: ApiError, hint: Option<String> },
    /// The control plane could not be reached or answered something unreadable.
    #[error("{0}")]
    Transport(String),
    /// Something local: a file, the config, a kubeconfig.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// Something local that is not an I/O error (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Something is missing locally (exit 5): a kubeconfig entry, a grant to revoke.
    #[error("{0}")]
    NotFound(String),
    /// The control plane's kubeconfig is not the one Lanyard writes; the
    /// kubeconfig file was left as it was (exit 1).
    #[error(
        "the control plane sent an unexpected kubeconfig ({}); nothing was changed in {}. \
         Check that you logged in to the right control plane (`lanyard whoami`) and tell its operator",
        escape(.reason),
        .path.display()
    )]
    UnexpectedKubeconfig { reason: String, path: PathBuf },
}

impl CliError {
    /// The exit code of this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => exit::USAGE,
            CliError::NotLoggedIn(_)
            | CliError::OtherControlPlane(_)
            | CliError::SignIn(_)
            | CliError::SessionEnded { .. } => exit::UNAUTHENTICATED,
            CliError::Api { api, .. } => match api.status {
                401 => exit::UNAUTHENTICATED,
                403 => exit::FORBIDDEN,
                404 => exit::NOT_FOUND,
                409 => exit::CONFLICT,
                400 | 422 => exit::USAGE,
                _ => exit::ERROR,
            },
            CliError::NotFound(_) => exit::NOT_FOUND,
            CliError::Transport(_)
            | CliError::Io { .. }
            | CliError::Failed(_)
            | CliError::UnexpectedKubeconfig { .. } => exit::ERROR,
        }
    }

    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
        let context = context.into();
        move |source| CliError::Io { context, source }
    }

    /// The API error, if this is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            CliError::Api { api, .. } => Some(api),
            _ => None,
        }
    }

    /// Set the next step of an API error of `status` (other errors are returned unchanged).
    pub fn hint_on(self, status: u16, hint: impl FnOnce(&ApiError) -> String) -> CliError {
        match self {
            CliError::Api { api, .. } if api.status == status => {
                let hint = hint(&api);
                CliError::Api { api, hint: Some(hint) }
            }
            other => other,
        }
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;
