#!/usr/bin/env bash
# The project's test command: every test of the workspace against the local MariaDB, Redis
# and RabbitMQ (see README). Uses cargo-nextest when installed, else cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
# graphql-http's server audits run from a test (api/tests/api/http.rs): install them once.
if [ ! -d tools/graphql-http-audit/node_modules/graphql-http ]; then
  (cd tools/graphql-http-audit && npm ci --no-audit --no-fund --loglevel=error)
fi
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --no-fail-fast "$@"
else
  exec cargo test --workspace --no-fail-fast "$@"
fi
