//! `login-config` component: Where the CLI signs in (public).
//! Glue only; the endpoint lives in `lanyard_core::api::sign_in`.

use lanyard_glue::{Endpoint, handler};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    lanyard_glue::serve(const { handler(Endpoint::LoginConfig) }, req, out).await
}
