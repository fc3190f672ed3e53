#!/usr/bin/env bash
# The project's test command: every test of the workspace against the local MariaDB, Redis
# and RabbitMQ (see README). Uses cargo-nextest when installed, else cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
# graphql-http's server audits and the graphql-ws reference client run from tests
# (api/tests/api/http.rs, subscription.rs): install them once.
if [ ! -d tools/graphql-http-audit/node_modules/graphql-http ] || [ ! -d tools/graphql-http-audit/node_modules/graphql-ws ]; then
  (cd tools/graphql-http-audit && npm ci --no-audit --no-fund --loglevel=error)
fi
# graphql-schema-linter, graphql-codegen and tsc run from a test (api/tests/api/schema.rs,
# through tools/codegen/check.sh): install them once too.
if [ ! -x tools/codegen/node_modules/.bin/graphql-codegen ]; then
  (cd tools/codegen && npm ci --no-audit --no-fund --loglevel=error)
fi
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --no-fail-fast "$@"
else
  exec cargo test --workspace --no-fail-fast "$@"
fi
