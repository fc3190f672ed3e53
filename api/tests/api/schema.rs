/// The committed SDL is what clients generate code from: it must match the code.
#[test]
fn committed_schema_is_current() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("api/schema.graphql exists (cargo run -- export-schema > api/schema.graphql)");
    assert!(
        committed == api::graphql::sdl(),
        "api/schema.graphql is stale: run `cargo run -q -p api -- export-schema > api/schema.graphql`"
    );
}
