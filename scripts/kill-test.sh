#!/usr/bin/env bash
# Kills the iot example job with kill -9 at random moments, many times, and
# checks that its published output equals an uninterrupted run's.
#   scripts/kill-test.sh [KILLS] [SEED]     (default 200 kills, a random seed)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
export WEIR_KILL_ROUNDS="${1:-200}"
if [ $# -ge 2 ]; then export WEIR_KILL_SEED="$2"; fi
cargo test --test kill_restore -- --nocapture kill_minus_nine
