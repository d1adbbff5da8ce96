//! The quickstart example's service described: its OpenRPC document is
//! checked in beside the demo's (clients/ts/examples/greeter.openrpc.json,
//! validated against the OpenRPC meta-schema by clients/ts's Node tests) and
//! this test keeps it fresh. Regenerate it with
//! `STRAND_BLESS=1 cargo test -p strand --features openrpc --test quickstart_openrpc`.
#![cfg(feature = "openrpc")]

#[path = "../examples/quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

#[test]
fn the_quickstart_document_is_checked_in_and_fresh() {
    let doc = quickstart::GreeterClient::openrpc();
    let names: Vec<&str> = doc["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello", "count"]);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients/ts/examples/greeter.openrpc.json");
    let fresh = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var_os("STRAND_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "{} is stale: regenerate it with `STRAND_BLESS=1 cargo test -p strand --features openrpc --test quickstart_openrpc`",
        path.display()
    );
}
