//! The CLI's kubeconfig merge: any existing kubeconfig text, and any
//! control-plane answer in place of Lanyard's kubeconfig. The CLI refuses an
//! answer that is not exactly one cluster, user and context of Lanyard's
//! shape; a merge it does perform keeps every entry it does not own, is
//! idempotent, and its result parses again.
#![no_main]

use arbitrary::Arbitrary;
use lanyard_cli::kubeconfig;
use lanyard_fuzz::plane;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    existing: String,
    /// The control plane's answer; the real kubeconfig when `None`.
    incoming: Option<String>,
    set_current: bool,
}

fn names(doc: &serde_norway::Value, list: &str) -> Vec<String> {
    doc.get(list)
        .and_then(|l| l.as_sequence())
        .map(|l| l.iter().filter_map(|e| e.get("name")?.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fuzz_target!(|input: Input| {
    let incoming = input.incoming.as_deref().unwrap_or(&plane().kubeconfig);
    let (Ok(mut doc), Ok(incoming)) = (kubeconfig::parse(&input.existing), kubeconfig::parse(incoming)) else {
        return;
    };
    let original = doc.clone();
    let Ok(context) = kubeconfig::merge(&mut doc, &incoming, input.set_current) else {
        return;
    };
    assert!(names(&doc, "contexts").contains(&context), "the merged context is in the file");
    for list in ["clusters", "users", "contexts"] {
        let replaced = names(&incoming, list);
        for name in names(&original, list) {
            if !replaced.contains(&name) {
                assert!(names(&doc, list).contains(&name), "{list} entry {name:?} was lost");
            }
        }
    }
    let once = doc.clone();
    kubeconfig::merge(&mut doc, &incoming, input.set_current).expect("a merge that worked works again");
    assert_eq!(doc, once, "merging twice changes nothing more");
    // A file YAML can read but not write back (complex tagged keys) is
    // refused when saving, before anything is written; a merge never makes
    // a writable file unwritable, and what it writes reads back.
    if serde_norway::to_string(&original).is_ok() {
        let text = serde_norway::to_string(&doc).expect("the merged file serializes");
        assert!(kubeconfig::parse(&text).is_ok(), "the result parses again");
    }
});
