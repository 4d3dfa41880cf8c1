#!/usr/bin/env bash
# Runs every bench and writes one report: target/bench-report/report.md,
# figures.json and PNG plots (see benches/README.md for how to read it).
#
#   scripts/bench.sh --quick     # a few minutes (after the first build)
#   scripts/bench.sh             # the full run: more events, runs and rates
#
# Options: --quick, --no-kafka (leave out the Kafka end-to-end bench, which
# starts the local broker with scripts/kafka.sh), --out DIR (instead of
# target/bench-report). Each bench's full output goes to DIR/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

mode=full
kafka=1
out="$root/target/bench-report"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick ;;
    --no-kafka) kafka=0 ;;
    --out)
      [ $# -ge 2 ] || { echo "bench.sh: --out needs a directory" >&2; exit 2; }
      out="$2"
      shift
      ;;
    -h | --help)
      sed -n '2,10s/^# \{0,1\}//p' "$0"
      exit 0
      ;;
    *)
      echo "bench.sh: unknown option $1 (use --quick, --no-kafka, --out DIR)" >&2
      exit 2
      ;;
  esac
  shift
done

scripts/setup.sh
. scripts/env.sh

if [ "$mode" = quick ]; then
  iot=(--events 10000000 --runs 1)
  nexmark=(--events 5000000 --runs 1)
  latency=(--rates 100000,500000,2000000 --seconds 3 --warmup 1)
  kafka_args=(--rates 10000,100000 --seconds 6 --warmup 2)
else
  iot=(--events 20000000 --runs 3)
  nexmark=(--events 30000000 --runs 3)
  latency=(--rates 100000,250000,500000,1000000,2000000,4000000 --seconds 8 --warmup 2)
  kafka_args=(--rates 10000,50000,100000 --seconds 10 --warmup 2 --runs 3)
fi

mkdir -p "$out/logs"
rm -f "$out"/*.jsonl "$out"/*.png "$out"/report.md "$out"/figures.json
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$SECONDS

steps=(build iot nexmark latency)
[ "$kafka" = 1 ] && steps+=(kafka)
steps+=(report)
total=${#steps[@]}
index=0

# Runs one step with its output in logs/NAME.log, showing a progress line
# (step, elapsed time, the step's latest output) until it ends.
step() {
  local name="$1"
  shift
  index=$((index + 1))
  local log="$out/logs/$name.log" started_at=$SECONDS
  "$@" >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ -t 1 ]; then
      local last
      last=$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | cut -c1-70)
      printf '\r\033[K[%d/%d] %-8s %4ds  %s' "$index" "$total" "$name" $((SECONDS - started_at)) "$last"
    fi
    sleep 1
  done
  local rc=0
  wait "$pid" || rc=$?
  [ -t 1 ] && printf '\r\033[K'
  if [ "$rc" -ne 0 ]; then
    echo "[$index/$total] $name FAILED after $((SECONDS - started_at)) s; the end of $log:" >&2
    tail -n 25 "$log" >&2
    exit 1
  fi
  echo "[$index/$total] $name done in $((SECONDS - started_at)) s"
}

bench() {
  local name="$1"
  shift
  cargo bench -q -p weir-benches --bench "$name" -- "$@"
}

step build bash -c 'cargo bench -p weir-benches --no-run && cargo build --release -p weir-bench-report'
step iot bench iot_windows "${iot[@]}" --json "$out/iot.jsonl"
step nexmark bench nexmark "${nexmark[@]}" --json "$out/nexmark.jsonl"
step latency bench latency "${latency[@]}" --sweep --workers 1,2 --pipes stage,window \
  --checkpoints off,1s --json "$out/latency.jsonl"
if [ "$kafka" = 1 ]; then
  step kafka bench kafka_latency "${kafka_args[@]}" --json "$out/kafka.jsonl"
fi

command="scripts/bench.sh"
[ "$mode" = quick ] && command+=" --quick"
[ "$kafka" = 0 ] && command+=" --no-kafka"
dirty=""
git diff --quiet 2>/dev/null || dirty=" (with uncommitted changes)"
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
cat >"$out/meta.json" <<EOF
{
  "command": "$command",
  "mode": "$mode",
  "started": "$started",
  "took": "$((SECONDS - t0)) s",
  "commit": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty",
  "machine": "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)",
  "cpu": "${cpu:-unknown}",
  "load_before": "$load_before",
  "rustc": "$(rustc -V)"
}
EOF
step report "$CARGO_TARGET_DIR/release/weir-bench-report" "$out"
echo "report: $out/report.md"
