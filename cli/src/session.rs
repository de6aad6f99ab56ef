//! The session as the commands get it: renewed silently with the refresh
//! token when it has expired or is about to.
//!
//! [`decide`] says what to do with a saved session: use it, renew it (it
//! expires within [`RENEW_BEFORE_SECS`] and a refresh token is saved), or
//! give up (it has expired and nothing can renew it). Renewal ([`fresh`])
//! runs under an exclusive lock on `<config>.lock`: kubectl may start several
//! exec plugins at once and providers rotate refresh tokens (a token used
//! twice can revoke the whole chain), so only one process renews; the others
//! wait for the lock, re-read the config and find the session it saved. The
//! new ID token and the rotated refresh token are saved in one atomic write.
//!
//! When renewal is impossible (no refresh token, the provider refuses it,
//! the provider cannot be reached) and the session has expired, the error
//! is one line ([`CliError::SessionEnded`]) telling to run `lanyard login`;
//! a session still valid for a few seconds is used as it is. Nothing is
//! printed on success: the exec plugin's stdout is kubectl's.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::config::{self, Config, Refresh, Session, SessionInfo};
use crate::error::{CliError, Result};
use crate::fsutil::{self, unix_now};
use crate::oidc::{self, Answer, Unreachable};
use crate::output::escape;

/// A session is renewed this many seconds before it expires.
pub const RENEW_BEFORE_SECS: u64 = 30;

/// What to do with a saved session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Use it as it is.
    Use,
    /// Renew it with the refresh token first.
    Renew,
    /// It has expired and cannot be renewed.
    Ended,
}

/// The decision for a session expiring at `expires_at` (Unix seconds; a
/// session without `exp` is the control plane's to judge), at `now`.
pub fn decide(expires_at: Option<u64>, now: u64, can_renew: bool) -> Decision {
    match expires_at {
        Some(exp) if now.saturating_add(RENEW_BEFORE_SECS) >= exp => match (can_renew, now >= exp) {
            (true, _) => Decision::Renew,
            (false, true) => Decision::Ended,
            (false, false) => Decision::Use,
        },
        _ => Decision::Use,
    }
}

/// How a refresh token is used: the provider's token endpoint, or a stand-in in tests.
pub type Renew<'a> = &'a dyn Fn(&Refresh) -> Result<Answer, Unreachable>;

/// The session the commands use: the saved one, renewed if needed.
pub fn current() -> Result<Session> {
    let path = config::path()?;
    fresh(&path, &unix_now, &renew_with_provider)?.session(&path)
}

/// The refresh grant at the saved token endpoint.
pub fn renew_with_provider(refresh: &Refresh) -> Result<Answer, Unreachable> {
    let http = oidc::http_client().map_err(|e| Unreachable(e.to_string()))?;
    oidc::refresh(&http, &refresh.token_endpoint, &refresh.client_id, &refresh.refresh_token)
}

/// The config at `path` with a session good for now, renewed with `renew`
/// if needed ([`decide`]); `now` is the clock (Unix seconds).
pub fn fresh(path: &Path, now: &dyn Fn() -> u64, renew: Renew<'_>) -> Result<Config> {
    let cfg = Config::load(path)?;
    if step(&cfg, path, now())? == Decision::Use {
        return Ok(cfg);
    }
    let _lock = lock(path)?;
    // Another process may have renewed it while this one waited for the lock.
    let mut cfg = Config::load(path)?;
    let at = now();
    if step(&cfg, path, at)? == Decision::Use {
        return Ok(cfg);
    }
    let expired = expires_at(&cfg).is_some_and(|exp| at >= exp);
    let Some(refresh) = cfg.refresh.clone() else {
        return Err(ended(&cfg, "it expired and there is no refresh token"));
    };
    let failed = |cfg: Config, why: String| if expired { Err(ended(&cfg, &why)) } else { Ok(cfg) };
    let tokens = match renew(&refresh) {
        Ok(Answer::Tokens(tokens)) => tokens,
        Ok(Answer::Refused(e)) => {
            return failed(cfg, format!("the identity provider refused to renew it: {}", escape(&e.error)));
        }
        Err(Unreachable(why)) => return failed(cfg, why),
    };
    let Some(id_token) = tokens.id_token.filter(|t| !t.is_empty()) else {
        return failed(cfg, "the identity provider renewed it without an ID token".into());
    };
    if let Err(why) = oidc::check_id_token(&id_token, &refresh.issuer, &refresh.client_id, None) {
        return failed(cfg, why);
    }
    cfg.session_token = Some(id_token);
    if let (Some(saved), Some(rotated)) = (cfg.refresh.as_mut(), tokens.refresh_token.filter(|t| !t.is_empty())) {
        saved.refresh_token = rotated;
    }
    cfg.save(path)?;
    Ok(cfg)
}

/// [`decide`] for a loaded config; not logged in is an error.
fn step(cfg: &Config, path: &Path, now: u64) -> Result<Decision> {
    if cfg.session_token.as_deref().is_none_or(str::is_empty) {
        return Err(CliError::NotLoggedIn(path.to_path_buf()));
    }
    match decide(expires_at(cfg), now, cfg.refresh.is_some()) {
        Decision::Ended => Err(ended(cfg, "it expired and there is no refresh token")),
        d => Ok(d),
    }
}

fn expires_at(cfg: &Config) -> Option<u64> {
    SessionInfo::from_token(cfg.session_token.as_deref().unwrap_or_default()).expires_at
}

fn ended(cfg: &Config, why: &str) -> CliError {
    CliError::SessionEnded {
        why: escape(why).replace('\n', " "),
        control_plane: cfg.control_plane.as_deref().map(|c| escape(c).into_owned()),
    }
}

/// The lock file of the config at `path`: `<path>.lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "config.json".into());
    name.push(".lock");
    path.with_file_name(name)
}

/// Take the exclusive lock that serialises changes to the session (held
/// until the file is dropped). The lock file stays: removing it would let
/// two processes lock two different files.
pub fn lock(path: &Path) -> Result<File> {
    let lock_path = lock_path(path);
    if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fsutil::create_private_dir(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(CliError::io(format!("opening {}", lock_path.display())))?;
    file.lock().map_err(CliError::io(format!("locking {}", lock_path.display())))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const NOW: u64 = 1_900_000_000;
    const ISS: &str = "https://idp.example/dex";

    fn jwt(email: &str, exp: u64) -> String {
        let payload = json!({"iss": ISS, "aud": "lanyard-cli", "email": email, "exp": exp}).to_string();
        format!("e30.{}.sig", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload))
    }

    fn refresh(token: &str) -> Refresh {
        Refresh {
            issuer: ISS.into(),
            token_endpoint: format!("{ISS}/token"),
            client_id: "lanyard-cli".into(),
            refresh_token: token.into(),
        }
    }

    fn saved(dir: &Path, session: String, rt: Option<&str>) -> PathBuf {
        let path = dir.join("config.json");
        let cfg = Config {
            control_plane: Some("https://cp.example".into()),
            session_token: Some(session),
            refresh: rt.map(refresh),
        };
        cfg.save(&path).unwrap();
        path
    }

    fn tokens(id: Option<String>, rt: Option<&str>) -> Result<Answer, Unreachable> {
        Ok(Answer::Tokens(oidc::Tokens { id_token: id, refresh_token: rt.map(str::to_owned) }))
    }

    #[test]
    fn the_decision() {
        let exp = NOW + 100;
        assert_eq!(decide(Some(exp), NOW, true), Decision::Use);
        assert_eq!(decide(Some(exp), exp - RENEW_BEFORE_SECS - 1, true), Decision::Use);
        assert_eq!(decide(Some(exp), exp - RENEW_BEFORE_SECS, true), Decision::Renew);
        assert_eq!(decide(Some(exp), exp - RENEW_BEFORE_SECS, false), Decision::Use, "still valid: used as it is");
        assert_eq!(decide(Some(exp), exp, true), Decision::Renew);
        assert_eq!(decide(Some(exp), exp, false), Decision::Ended);
        assert_eq!(decide(None, NOW, false), Decision::Use, "no exp: the control plane judges");
    }

    #[test]
    fn renews_saves_the_rotated_refresh_token_and_keeps_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = saved(dir.path(), jwt("a@x", NOW - 1), Some("rt-1"));
        let new = jwt("a@x", NOW + 3600);
        let calls = AtomicUsize::new(0);
        let renew = |r: &Refresh| {
            assert_eq!(r.refresh_token, "rt-1");
            calls.fetch_add(1, Ordering::SeqCst);
            tokens(Some(new.clone()), Some("rt-2"))
        };
        let cfg = fresh(&path, &|| NOW, &renew).unwrap();
        assert_eq!(cfg.session_token.as_deref(), Some(new.as_str()));
        let on_disk = Config::load(&path).unwrap();
        assert_eq!(on_disk.session_token.as_deref(), Some(new.as_str()));
        assert_eq!(on_disk.refresh.unwrap().refresh_token, "rt-2");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(lock_path(&path)).unwrap().permissions().mode() & 0o777, 0o600);
        // Fresh now: used without asking the provider.
        fresh(&path, &|| NOW, &renew).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn concurrent_renewals_use_the_refresh_token_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = saved(dir.path(), jwt("a@x", NOW - 1), Some("rt-1"));
        let calls = AtomicUsize::new(0);
        let renew = |r: &Refresh| {
            // A rotating provider: a refresh token is good once.
            let n = calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!((n, r.refresh_token.as_str()), (0, "rt-1"), "the refresh token was used twice");
            tokens(Some(jwt("a@x", NOW + 3600)), Some("rt-2"))
        };
        let barrier = std::sync::Barrier::new(6);
        let sessions: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        fresh(&path, &|| NOW, &renew).unwrap().session_token.unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(sessions.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn when_renewal_is_impossible_one_line_says_to_log_in() {
        let dir = tempfile::tempdir().unwrap();
        let expired = jwt("a@x", NOW - 1);
        let refused = |_: &Refresh| {
            Ok(Answer::Refused(oidc::TokenError { error: "invalid_grant".into(), error_description: None }))
        };
        let unreachable =
            |_: &Refresh| Err(Unreachable("cannot reach the identity provider at https://idp.example".into()));
        let cases: [(Option<&str>, Renew<'_>, &str); 3] = [
            (None, &refused, "no refresh token"),
            (Some("secret-rt"), &refused, "invalid_grant"),
            (Some("secret-rt"), &unreachable, "cannot reach"),
        ];
        for (rt, renew, why) in cases {
            let path = saved(dir.path(), expired.clone(), rt);
            let err = fresh(&path, &|| NOW, renew).unwrap_err();
            let text = err.to_string();
            assert_eq!(err.exit_code(), crate::error::exit::UNAUTHENTICATED);
            assert!(text.contains(why), "{text}");
            assert!(text.contains("run `lanyard login --control-plane https://cp.example`"), "{text}");
            assert!(!text.contains('\n') && !text.contains("secret-rt") && !text.contains(&expired), "{text}");
        }
        // Not expired yet (inside the renewal window): a failed renewal is silent and the session used.
        let valid = jwt("a@x", NOW + 5);
        let path = saved(dir.path(), valid.clone(), Some("rt"));
        assert_eq!(fresh(&path, &|| NOW, &unreachable).unwrap().session_token, Some(valid));
        // A renewed token for another client is refused.
        let path = saved(dir.path(), expired, Some("rt"));
        let other = |_: &Refresh| {
            let payload = json!({"iss": ISS, "aud": "someone-else", "exp": NOW + 3600}).to_string();
            tokens(Some(format!("e30.{}.sig", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload))), None)
        };
        assert!(fresh(&path, &|| NOW, &other).unwrap_err().to_string().contains("not for the client"));
        assert!(matches!(fresh(&dir.path().join("none.json"), &|| NOW, &other), Err(CliError::NotLoggedIn(_))));
    }
}
