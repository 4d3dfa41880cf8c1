#!/usr/bin/env bash
# Runs one example job, release build, from a bare machine: installs what
# the build needs first (scripts/setup.sh: libclang, and RocksDB built once
# per machine into ~/.cache/weir, 15 to 20 minutes the first time), then
#   cargo run --release --example JOB -- ARGS...
# Paths in ARGS are relative to where you run it.
#   scripts/run.sh fraud --events 2000000
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -lt 1 ]; then
  echo "usage: scripts/run.sh fraud|metrics|iot [JOB FLAGS...]  (scripts/run.sh iot --help lists them)" >&2
  exit 2
fi
"$root/scripts/setup.sh"
. "$root/scripts/env.sh"
job="$1"
shift
exec cargo run --quiet --release --manifest-path "$root/Cargo.toml" --example "$job" -- "$@"
