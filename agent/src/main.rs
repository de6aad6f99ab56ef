//! `lanyard-agent`: the native agent that runs beside a cluster. The reconcile
//! worker and the access proxy arrive with the next issues; today it only says so.
fn main() {
    eprintln!("lanyard-agent: the reconcile worker and access proxy are not built yet");
    std::process::exit(2);
}
