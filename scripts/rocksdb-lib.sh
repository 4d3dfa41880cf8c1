#!/usr/bin/env bash
# Builds RocksDB's C++ library once per machine and keeps it outside the
# clone, so later builds (debug and release, any clone) link the archive
# instead of compiling RocksDB again (15 to 20 minutes on 2 cores).
#   scripts/rocksdb-lib.sh          build the archive if it is missing
#   scripts/rocksdb-lib.sh --print  print the archive's directory, or nothing
# Source scripts/env.sh to use it; WEIR_ROCKSDB_FROM_SOURCE=1 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

# The archive is keyed by the librocksdb-sys version in Cargo.lock and the
# compressions the workspace enables (lz4, zstd; see Cargo.toml).
version=$(awk '/^name = "librocksdb-sys"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$version" ]; then
  echo "rocksdb-lib: no librocksdb-sys in Cargo.lock" >&2
  exit 1
fi
cache="${WEIR_CACHE:-$HOME/.cache/weir}/rocksdb-$version-lz4-zstd"

if [ "${1:-}" = "--print" ]; then
  if [ -f "$cache/librocksdb.a" ]; then echo "$cache"; fi
  exit 0
fi
if [ -f "$cache/librocksdb.a" ]; then
  exit 0
fi

echo "rocksdb-lib: building RocksDB $version once into $cache (15 to 20 minutes on 2 cores)" >&2
build="$cache.build"
unset ROCKSDB_LIB_DIR ROCKSDB_STATIC
CARGO_TARGET_DIR="$build" cargo build --release --locked -p librocksdb-sys --quiet
archive=$(find "$build/release/build" -path '*librocksdb-sys-*/out/librocksdb.a' | head -n 1)
if [ -z "$archive" ]; then
  echo "rocksdb-lib: the build made no librocksdb.a under $build" >&2
  exit 1
fi
mkdir -p "$cache.tmp"
cp "$archive" "$cache.tmp/librocksdb.a"
rm -rf "$cache"
mv "$cache.tmp" "$cache"
rm -rf "$build"
echo "rocksdb-lib: $cache/librocksdb.a" >&2
