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
cargo test --workspace "$@"
