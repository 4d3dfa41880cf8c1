#!/usr/bin/env bash
# Installs what building and testing weir needs, skipping what is already
# there. Today that is a Rust toolchain (1.88 or newer) and a C compiler;
# RocksDB and Kafka arrive with the checkpoint and Kafka work.
set -euo pipefail

need() { command -v "$1" >/dev/null 2>&1; }

if ! need cargo; then
  echo "setup: cargo is missing: install Rust 1.88+ (https://rustup.rs), then rerun" >&2
  exit 1
fi
if ! need cc; then
  if need apt-get && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq build-essential >/dev/null
  else
    echo "setup: a C compiler (cc) is missing: install build-essential" >&2
    exit 1
  fi
fi
