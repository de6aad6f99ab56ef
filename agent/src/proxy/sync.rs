//! Keeps the proxy's view of the cluster's access (revocation epoch, users
//! with a live grant, token keys) in step with the control plane: the access
//! state is polled every `poll` (a quarter of a second by default, so that a
//! revocation reaches the proxy within a second), the JWKS every
//! `jwks_every` and parsed only when it changes. The view carries the time of
//! its last successful sync; [`lanyard_core::proxy::access::AccessView::admit`]
//! refuses everything once that is older than the staleness limit.
//!
//! A failing sync keeps the last view (so the proxy keeps enforcing what it
//! last knew), and says so: a warning when syncing starts failing, an error
//! when the view passes the staleness limit, and a line when it recovers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lanyard_core::ids::ClusterId;
use lanyard_core::proxy::access::AccessView;
use lanyard_core::token::Verifier;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::clock::WallClock;
use crate::control::ControlPlane;
use crate::metrics::Metrics;

/// The view every request reads; `None` until the first sync.
pub type View = watch::Receiver<Option<Arc<AccessView>>>;

/// How often to sync.
#[derive(Debug, Clone, Copy)]
pub struct SyncTiming {
    /// Between two reads of the access state.
    pub poll: Duration,
    /// Between two reads of the JWKS.
    pub jwks_every: Duration,
    /// After how long without a sync the proxy refuses everything.
    pub max_staleness: Duration,
}

/// The sync loop.
pub struct AccessSync {
    control: ControlPlane,
    cluster_id: ClusterId,
    timing: SyncTiming,
    clock: Arc<dyn WallClock>,
    metrics: Arc<Metrics>,
    tx: watch::Sender<Option<Arc<AccessView>>>,
}

impl AccessSync {
    /// The loop for `cluster_id`, and the view it keeps.
    pub fn new(
        control: ControlPlane,
        cluster_id: ClusterId,
        timing: SyncTiming,
        clock: Arc<dyn WallClock>,
        metrics: Arc<Metrics>,
    ) -> (AccessSync, View) {
        let (tx, rx) = watch::channel(None);
        (AccessSync { control, cluster_id, timing, clock, metrics, tx }, rx)
    }

    /// Sync until `shutdown` says so.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut keys: Option<(Bytes, Arc<Verifier>)> = None;
        let mut jwks_due = Instant::now();
        let mut failing = false;
        let mut stale_reported = false;
        loop {
            if Instant::now() >= jwks_due {
                match self.control.jwks().await {
                    Ok(raw) => {
                        if keys.as_ref().is_none_or(|(old, _)| *old != raw) {
                            let verifier = parse_jwks(&raw);
                            if verifier.is_empty() {
                                warn!("the control plane publishes no token keys: every request will be refused");
                            } else {
                                info!(keys = verifier.len(), "loaded the control plane's token keys");
                            }
                            keys = Some((raw, Arc::new(verifier)));
                        }
                        jwks_due = Instant::now() + self.timing.jwks_every;
                    }
                    Err(e) => warn!(error = %e, "cannot read the token keys; keeping the last ones"),
                }
            }
            let synced = match (&keys, self.control.state().await) {
                (_, Ok(state)) if state.cluster_id != self.cluster_id => {
                    error!(got = %state.cluster_id, "the control plane answered for another cluster; ignoring it");
                    false
                }
                (Some((_, verifier)), Ok(state)) => {
                    let now = self.clock.unix_now();
                    let view = AccessView::new(&state, verifier.clone(), now);
                    let changed = self
                        .tx
                        .borrow()
                        .as_ref()
                        .is_none_or(|old| old.epoch() != view.epoch() || old.users() != view.users());
                    if changed {
                        info!(epoch = view.epoch(), users = view.users(), "access state");
                    }
                    self.metrics.access_synced(now);
                    self.tx.send_replace(Some(Arc::new(view)));
                    true
                }
                (None, Ok(_)) => false,
                (_, Err(e)) => {
                    if !failing {
                        warn!(
                            error = %e,
                            limit_seconds = self.timing.max_staleness.as_secs(),
                            "cannot sync the access state: the proxy enforces the last state it knew until it is \
                             older than the staleness limit, then refuses every request"
                        );
                    }
                    false
                }
            };
            if synced {
                if failing {
                    info!("the access state is in sync again");
                }
                failing = false;
                stale_reported = false;
            } else {
                failing = true;
                let age = self.tx.borrow().as_ref().map(|v| v.age(self.clock.unix_now()));
                if !stale_reported && age.is_some_and(|age| age > self.timing.max_staleness.as_secs()) {
                    error!(
                        age_seconds = age.unwrap_or_default(),
                        "the access state is older than the staleness limit: refusing every request until the \
                         control plane answers again"
                    );
                    stale_reported = true;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timing.poll) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// The verifier of a JWKS document; anything that is not one holds no key.
fn parse_jwks(raw: &[u8]) -> Verifier {
    let doc = serde_json::from_slice(raw).unwrap_or(serde_json::Value::Null);
    Verifier::from_jwks(&doc)
}
