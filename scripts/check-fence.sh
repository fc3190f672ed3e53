#!/usr/bin/env bash
# The dependency fence of ARCHITECTURE §2: `domain` uses no IO crates, `migration` does not
# depend on `persistence`, only `api` knows poem / async-graphql (and `bench`, which drives
# it), and `api` reaches MySQL, Redis and RabbitMQ only through `persistence`: no direct
# dependency on sqlx, sea-orm, redis, lapin or reqwest (its tests may use them).
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
# Direct (depth 1, normal edges) dependencies of a crate, one name a line.
direct_deps() {
  cargo tree -p "$1" -e normal --depth 1 --prefix none -f '{p}' | awk 'NR > 1 { print $1 }' | sort -u
}
api_deps=$(direct_deps api)
[ -n "$api_deps" ] || { echo "fence: could not list the dependencies of api" >&2; exit 1; }
for dep in sqlx sea-orm redis lapin reqwest; do
  if grep -qx -- "$dep" <<<"$api_deps"; then
    echo "fence broken: api depends directly on $dep" >&2
    fail=1
  fi
done
[ "$fail" = 0 ] && echo "fence holds"
exit "$fail"
