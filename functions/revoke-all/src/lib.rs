//! `revoke-all` component: Revoke every grant of a cluster and invalidate its tokens (admins).
//! Glue only; the endpoint lives in `lanyard_core::api`.

use lanyard_glue::{Endpoint, handler};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    lanyard_glue::serve(const { handler(Endpoint::RevokeAll) }, req, out).await
}
