//! Records as the wire shows them: the one conversion from each stored
//! record to its [`crate::wire`] type.

use crate::ids::rfc3339;
use crate::model::{ClusterKind, display_status};
use crate::records::{ClusterRecord, GrantWithStatus, Heartbeat, Member};
use crate::wire;

/// A grant with the status it shows while the agent is (not) online.
pub fn grant(g: &GrantWithStatus, agent_online: bool) -> wire::Grant {
    let (status, error) = display_status(g.observed.as_ref(), agent_online);
    let r = &g.grant;
    wire::Grant {
        id: r.id.clone(),
        terms: r.terms.clone(),
        status,
        error: error.map(str::to_owned),
        created_at: rfc3339(r.created_at),
        created_by: r.created_by.clone(),
    }
}

/// A member.
pub fn member(m: &Member) -> wire::Member {
    wire::Member { id: m.id.clone(), email: m.email.clone(), name: m.name.clone(), status: m.status, role: m.role }
}

/// A cluster, with its agent online if `beat` is at most `offline_after` seconds old at `now`.
pub fn cluster(c: &ClusterRecord, beat: Option<&Heartbeat>, now: u64, offline_after: u64) -> wire::Cluster {
    wire::Cluster {
        id: c.id.clone(),
        name: c.name.clone(),
        kind: c.kind,
        proxy_url: c.proxy_url.clone(),
        ca_pem: c.trusted_ca(beat).map(str::to_owned),
        access_supported: c.kind == ClusterKind::Standard,
        agent: wire::AgentStatus {
            online: beat.is_some_and(|b| b.is_fresh(now, offline_after)),
            last_heartbeat: beat.map(|b| rfc3339(b.at)),
        },
        created_at: rfc3339(c.created_at),
    }
}
