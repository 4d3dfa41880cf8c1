#!/usr/bin/env bash
# Runs weir's whole test suite: unit tests, integration tests (which run the
# example jobs as real processes, on 1, 2 and 4 workers and on 2 processes),
# and doctests. Installs what the tests need first, skipping what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
. scripts/env.sh

# Tests start multi-process jobs on loopback; keep test binaries from
# starving each other on a 2-core machine.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"
cargo test --workspace --no-run "$@"

# A hung test fails the run instead of stalling it: past the limit, every
# test process still running prints its threads' stacks, then all stop.
limit="${WEIR_TEST_LIMIT:-2400}" # seconds, for running (not building) the tests
watchdog() {
  sleep "$((limit - 30))" </dev/null >/dev/null 2>&1
  echo "test.sh: the tests are still running after $((limit - 30)) s; stacks of what runs:" >&2
  for pid in $(pgrep -f "/deps/|/examples/" || true); do
    echo "--- $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-200)" >&2
    gdb -batch -p "$pid" -ex "thread apply all bt 30" 2>/dev/null | grep -E '^(Thread|#)' >&2 || true
  done
}
watchdog &
dog=$!
status=0
timeout -k 10 "$limit" cargo test --workspace "$@" || status=$?
kill "$dog" 2>/dev/null || true
if [ "$status" = 124 ]; then
  echo "test.sh: the tests did not finish within $limit s (WEIR_TEST_LIMIT)" >&2
fi
exit "$status"
