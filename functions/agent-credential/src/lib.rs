//! `agent-credential` component: Rotate a cluster's agent credential (admins).
//! Glue only; the endpoint lives in `lanyard_core::api`.

use lanyard_glue::{Endpoint, handler};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    lanyard_glue::serve(const { handler(Endpoint::AgentCredential) }, req, out).await
}
