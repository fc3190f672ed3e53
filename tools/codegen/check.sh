#!/usr/bin/env bash
# What a frontend team does with api/schema.graphql, as one check (docs/SCHEMA.md §Codegen):
#   1. graphql-schema-linter over the schema (rules and the reasons for the ones left out:
#      graphql-schema-linter.config.js);
#   2. graphql-codegen (client preset: typescript + typescript-operations + typed-document-node)
#      over the sample operations in operations/, into generated/;
#   3. tsc --noEmit with strict settings over client.ts and the generated code.
# Any error fails the script. Run by the test api/tests/api/schema.rs; installs the tools once
# (npm ci) when node_modules is missing.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/graphql-codegen ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "== graphql-schema-linter"
node_modules/.bin/graphql-schema-linter
echo "== graphql-codegen"
rm -rf generated
node_modules/.bin/graphql-codegen --config codegen.yml --silent
echo "== tsc --noEmit (strict)"
node_modules/.bin/tsc --noEmit -p tsconfig.json
echo "ok"
