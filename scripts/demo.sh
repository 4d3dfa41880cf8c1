#!/usr/bin/env bash
# An example job on the local Kafka broker, end to end:
#   scripts/demo.sh JOB [EVENTS] [RATE]
# starts the broker (scripts/kafka.sh), creates fresh topics for this demo,
# feeds EVENTS generated records (default 200000) at RATE per second
# (default: as fast as the broker takes them) with `weir-kafka produce`,
# runs JOB with --kafka ... --stop-at-end (a bounded run that reads each
# partition to its end, then flushes every window), and shows the first
# results and dead letters from their topics with `weir-kafka tail`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
job="${1:-}"
case "$job" in
  fraud | metrics | iot) ;;
  *)
    echo "usage: scripts/demo.sh fraud|metrics|iot [EVENTS] [RATE]" >&2
    exit 2
    ;;
esac
events="${2:-200000}"
rate="${3:-}"
"$root/scripts/setup.sh"
. "$root/scripts/env.sh"
"$root/scripts/kafka.sh" start
bootstrap="127.0.0.1:${WEIR_KAFKA_PORT:-9092}"

echo "demo: building the $job example and weir-kafka (release)" >&2
cargo build --quiet --release --manifest-path "$root/Cargo.toml" --example "$job"
cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p weir-kafka --bin weir-kafka
bin="$CARGO_TARGET_DIR/release"
tool=("$bin/weir-kafka" --kafka "$bootstrap")

run="demo-$job-$(date +%s)"
"${tool[@]}" topics "$run-input:4" "$run-output:4" "$run-dead-letters:1"
feed=(produce --job "$job" --topic "$run-input" --events "$events" --malformed-fraction 0.001)
[ -n "$rate" ] && feed+=(--rate "$rate")
"${tool[@]}" "${feed[@]}"

echo "demo: $job --kafka $bootstrap --input-topic $run-input --stop-at-end" >&2
"$bin/examples/$job" --kafka "$bootstrap" --input-topic "$run-input" \
  --output-topic "$run-output" --dead-letter-topic "$run-dead-letters" \
  --stop-at-end --no-checkpoints -w 2

echo "demo: the first results on $run-output:" >&2
"${tool[@]}" tail --topic "$run-output" | head -5
echo "demo: $("${tool[@]}" tail --topic "$run-output" | wc -l) results; the first dead letters on $run-dead-letters:" >&2
"${tool[@]}" tail --topic "$run-dead-letters" --headers | head -3
