#!/usr/bin/env bash
# Installs what building and testing weir needs, skipping what is already
# there: a Rust toolchain (1.88 or newer), a C/C++ compiler, libclang
# (bindgen generates RocksDB's bindings with it), a JDK and Maven (the Kafka
# broker), a font (the bench report's plots), and RocksDB's C++ library,
# built once per machine into ~/.cache/weir (scripts/rocksdb-lib.sh: about
# 10 minutes on 2 cores) and linked by every later build (scripts/env.sh).
set -euo pipefail

need() { command -v "$1" >/dev/null 2>&1; }
have_libclang() {
  # libclang itself, not libclang-cpp (which some images ship alone).
  compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null ||
    compgen -G '/usr/lib/*/libclang-[0-9]*.so*' >/dev/null
}

if ! need cargo; then
  echo "setup: cargo is missing: install Rust 1.88+ (https://rustup.rs), then rerun" >&2
  exit 1
fi

missing=()
need cc || missing+=(build-essential)
need c++ || missing+=(g++)
have_libclang || missing+=(libclang-dev)
need java || missing+=(default-jdk-headless) # the Kafka broker (scripts/kafka.sh)
need mvn || missing+=(maven)
# A TrueType font for the plots of scripts/bench.sh's report.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || [ -n "${WEIR_REPORT_FONT:-}" ] ||
  missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  if need apt-get && [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

"$(dirname "$0")/rocksdb-lib.sh"
