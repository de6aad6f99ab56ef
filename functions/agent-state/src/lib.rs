//! `agent-state` component: The cluster's access state: revocation epoch and live grants (agent credential).
//! Glue only; the endpoint lives in `lanyard_core::agent_api`.

use lanyard_glue::{Endpoint, handler};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    lanyard_glue::serve(const { handler(Endpoint::AgentState) }, req, out).await
}
