#!/usr/bin/env bash
# The dependency fence of ARCHITECTURE §2: `domain` uses no IO crates, `migration` does not
# depend on `persistence`, and only `api` knows poem / async-graphql.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
forbid() { # crate, dependency
  if cargo tree -p "$1" -e normal -i "$2" >/dev/null 2>&1; then
    echo "fence broken: $1 depends on $2" >&2
    fail=1
  fi
}
for dep in sea-orm redis lapin poem async-graphql tokio sqlx; do forbid domain "$dep"; done
forbid migration persistence
for dep in poem async-graphql; do forbid persistence "$dep"; forbid migration "$dep"; done
[ "$fail" = 0 ] && echo "fence holds"
exit "$fail"
