//! The schema as clients get it (docs/SCHEMA.md): committed SDL current, its conventions, and
//! the frontend toolchain (lint, codegen, `tsc --strict`) clean over it.

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

/// The root types are `Query`, `Mutation`, `Subscription`; the scalars say what they are.
#[test]
fn roots_and_scalars_follow_the_conventions() {
    let sdl = api::graphql::sdl();
    assert!(
        sdl.contains("\tquery: Query\n\tmutation: Mutation\n\tsubscription: Subscription\n"),
        "{sdl}"
    );
    for scalar in [
        "scalar DateTime @specifiedBy(url: \"https://scalars.graphql.org/andimarek/date-time\")",
        "scalar Decimal @specifiedBy(url: \"https://www.w3.org/TR/xmlschema11-2/#decimal\")",
    ] {
        assert!(sdl.contains(scalar), "missing `{scalar}`");
    }
    assert!(sdl.contains("interface Node {"), "{sdl}");
    for node in ["Strategy", "SkuProduct", "Task", "Stage"] {
        assert!(
            sdl.contains(&format!("type {node} implements Node {{")),
            "{node} is not a Node"
        );
    }
}

/// Identifiers are `ID` (docs/SCHEMA.md §Identifiers): every field or argument named `id`,
/// `sku` or `…Id`, except `awardId` (a 32-bit `int` column) and the text keys chosen outside
/// the service: `userId` (the identity provider's name), `bizId` (`{userId}_{type}_{day}`) and
/// `traceId` (a W3C trace id, hex).
#[test]
fn identifiers_are_ids_except_award_ids_and_text_keys() {
    let sdl = api::graphql::sdl();
    let mut checked = 0;
    for line in sdl.lines() {
        let line = line.trim().trim_end_matches(',');
        let Some((head, ty)) = line.split_once(": ") else {
            continue;
        };
        // `name: Type` or `field(name: Type…`: description lines have other characters.
        let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !head.split('(').all(word) || head.matches('(').count() > 1 {
            continue;
        }
        let name = head.rsplit('(').next().unwrap_or(head);
        if !(name == "id" || name == "sku" || name.ends_with("Id"))
            || ["awardId", "userId", "bizId", "traceId"].contains(&name)
        {
            continue;
        }
        let ty = ty
            .trim_start_matches('[')
            .split([')', '!', ']', ' '])
            .next()
            .unwrap_or(ty);
        assert_eq!(ty, "ID", "`{line}`: identifiers are ID");
        checked += 1;
    }
    assert!(checked > 30, "only {checked} identifiers found: is the scan broken?");
}

/// What a frontend team runs over `api/schema.graphql`: graphql-schema-linter (every rule but
/// the alphabetical-order ones, `tools/codegen/graphql-schema-linter.config.js`), graphql-codegen
/// (client preset) over the sample operations and `tsc --noEmit` with `strict`, all without an
/// error. Needs Node.js; `tools/codegen/check.sh` runs `npm ci` when its tools are missing
/// (`scripts/test.sh` installs them once).
#[test]
fn codegen_and_strict_typescript_are_clean_over_the_schema() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/codegen");
    let out = std::process::Command::new("bash")
        .arg("check.sh")
        .current_dir(&dir)
        .output()
        .expect("running tools/codegen/check.sh (bash and Node.js 18 or newer are needed)");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{report}");
    assert!(out.status.success(), "tools/codegen/check.sh failed:\n{report}");
    assert!(report.contains("0 errors detected"), "{report}");
    assert!(
        report.trim_end().ends_with("ok") || report.contains("\nok\n"),
        "{report}"
    );
}
