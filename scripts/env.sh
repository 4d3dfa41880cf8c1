# Sourced by the project's scripts (and by you, before running cargo by hand
# in this shell): builds reuse one target directory outside the clone and,
# once scripts/rocksdb-lib.sh has built it, the RocksDB archive instead of
# compiling RocksDB again. Changing these between builds rebuilds RocksDB's
# crate, so every script sets the same values.
#   . scripts/env.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir-target}"
if [ -z "${WEIR_ROCKSDB_FROM_SOURCE:-}" ]; then
  _weir_rocksdb_lib="$("$(dirname "${BASH_SOURCE[0]:-$0}")/rocksdb-lib.sh" --print)"
  if [ -n "$_weir_rocksdb_lib" ]; then
    export ROCKSDB_LIB_DIR="$_weir_rocksdb_lib" ROCKSDB_STATIC=1
  fi
  unset _weir_rocksdb_lib
fi
