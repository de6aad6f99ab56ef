//! `portal` component: the Access view's pages and assets (`portal/` at the
//! repository root, embedded here and nowhere else). Glue only; the rules
//! live in `lanyard_core::portal`. It serves `Endpoint::Portal`.

use lanyard_core::portal::Assets;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

static ASSETS: Assets = Assets {
    html: include_str!("../../../portal/index.html"),
    js: include_str!("../../../portal/app.js"),
    css: include_str!("../../../portal/app.css"),
};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    lanyard_glue::serve_portal(&ASSETS, req, out).await
}
