// graphql-schema-linter's configuration for api/schema.graphql (run by check.sh).
//
// Every built-in rule is on except the four `*-sorted-alphabetically` ones. Those are style
// choices, not defects: our fields, arguments and enum values are in the order that reads
// best (ids first, a task's states in the order they happen: CREATED → PUBLISHED →
// DELIVERED), which is the order async-graphql writes them in, and codegen does not care.
//
// The relay rules stay on: every `…Connection` type is a real Relay connection (edges,
// pageInfo) with forward pagination arguments (`first`, `after`), and `PageInfo` is the
// Relay one.
module.exports = {
  schemaPaths: ['../../api/schema.graphql'],
  rules: [
    'arguments-have-descriptions',
    'defined-types-are-used',
    'deprecations-have-a-reason',
    'descriptions-are-capitalized',
    'enum-values-all-caps',
    'enum-values-have-descriptions',
    'fields-are-camel-cased',
    'fields-have-descriptions',
    'input-object-values-are-camel-cased',
    'input-object-values-have-descriptions',
    'relay-connection-types-spec',
    'relay-connection-arguments-spec',
    'relay-page-info-spec',
    'types-are-capitalized',
    'types-have-descriptions',
  ],
};
