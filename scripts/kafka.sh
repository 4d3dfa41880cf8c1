#!/usr/bin/env bash
# A local single-node Apache Kafka broker (KRaft, broker and controller in one
# JVM) on 127.0.0.1, for weir's tests, examples and benches. No registry
# ships Kafka's tarball, so `install` assembles it from Maven Central's jars
# (kafka_2.13, kafka-tools, a log4j2 binding) with a generated pom.xml, once,
# into ${WEIR_KAFKA_DIR:-~/.cache/weir-kafka}/<version>/libs, outside the clone.
#   scripts/kafka.sh install         fetch the jars (skipped once done)
#   scripts/kafka.sh start           install if needed, format once, start, wait
#                                    until it answers (no-op when running)
#   scripts/kafka.sh stop            SIGTERM, SIGKILL after 30 s
#   scripts/kafka.sh status          exit 0 and print the bootstrap address if running
#   scripts/kafka.sh reset           stop and delete the data dir (a fresh cluster)
#   scripts/kafka.sh topics [NAME[:PARTITIONS]...]
#                                    create the topics that are missing (4
#                                    partitions unless given); without names
#                                    weir-{fraud,metrics,iot}-{input,output,dead-letters}
#   scripts/kafka.sh tool CLASS ARG...  run a Kafka tool class on the jars
# Environment:
#   KAFKA_HOME             an unpacked Kafka 4 distribution: its libs/ are used
#                          and nothing is installed
#   WEIR_KAFKA_PORT        the broker's port (9092); the controller's is one more
#   WEIR_KAFKA_DIR         the jar cache (~/.cache/weir-kafka)
#   WEIR_KAFKA_DATA        config, storage, logs and pid file
#                          ($WEIR_KAFKA_DIR/data-<port>)
#   WEIR_KAFKA_START_TIMEOUT  seconds `start` waits for the broker (60)
set -euo pipefail

version=4.1.1
log4j_version=2.24.3 # what Kafka 4.1 ships; its slf4j is 1.7, hence log4j-slf4j-impl
port="${WEIR_KAFKA_PORT:-9092}"
case "$port" in
  '' | *[!0-9]*)
    echo "kafka: WEIR_KAFKA_PORT=$port is not a port number" >&2
    exit 1
    ;;
esac
controller_port=$((port + 1))
bootstrap="127.0.0.1:$port"
cache="${WEIR_KAFKA_DIR:-$HOME/.cache/weir-kafka}"
data="${WEIR_KAFKA_DATA:-$cache/data-$port}"
pidfile="$data/broker.pid"
log="$data/broker.log"
if [ -n "${KAFKA_HOME:-}" ]; then
  libs="$KAFKA_HOME/libs"
else
  libs="$cache/$version/libs"
fi

need() { command -v "$1" >/dev/null 2>&1; }
die() {
  echo "kafka: $*" >&2
  exit 1
}

need_java() {
  need java || die "java is missing: install Java 17+ (Debian: apt-get install default-jdk-headless, or run scripts/setup.sh)"
  local spec
  spec=$(java -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ { print $2 }')
  if [ "${spec%%.*}" -lt 17 ] 2>/dev/null; then
    die "Kafka 4 needs Java 17+, java here is $spec: install default-jdk-headless (17+) or put a newer java first on PATH"
  fi
}

# Runs a class on the jars as Kafka's own tool scripts do; tools log
# warnings to stderr only (without a config log4j2 complains first).
kafka_java() {
  local conf="$data/tools-log4j2.properties"
  mkdir -p "$data"
  if [ ! -f "$conf" ]; then
    cat >"$conf" <<'EOF2'
status = error
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = err
EOF2
  fi
  # Short admin commands start faster on C1 alone; perf tools want C2.
  local jit=-XX:TieredStopAtLevel=1
  [ "${1:-}" != --full-jit ] || { jit=-XX:+TieredCompilation; shift; }
  java -Xmx512m -XX:+UseSerialGC "$jit" \
    -Dlog4j2.configurationFile="$conf" -cp "$libs/*" "$@"
}

cmd_install() {
  if [ -n "${KAFKA_HOME:-}" ]; then
    compgen -G "$libs/kafka_2.13-*.jar" >/dev/null ||
      die "KAFKA_HOME=$KAFKA_HOME has no libs/kafka_2.13-*.jar: point it at an unpacked Kafka 4 distribution, or unset it"
    return 0
  fi
  local dir="$cache/$version"
  [ -f "$dir/installed" ] && return 0
  need_java
  need mvn || die "mvn is missing: install Maven (Debian: apt-get install maven, or run scripts/setup.sh)"
  echo "kafka: fetching Apache Kafka $version's jars from Maven Central into $libs" >&2
  local tmp="$dir.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # kafka_2.13 is the broker (kafka.Kafka, kafka.tools.StorageTool);
  # kafka-tools has TopicCommand, the console and perf tools.
  cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>weir</groupId>
  <artifactId>weir-kafka-broker</artifactId>
  <version>$version</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$version</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$version</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$log4j_version</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$log4j_version</version>
    </dependency>
  </dependencies>
</project>
EOF
  if ! mvn -q -B -f "$tmp/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1; then
    tail -n 20 "$tmp/mvn.log" >&2
    die "mvn could not fetch Kafka $version's jars (log above, full log in $tmp/mvn.log): check that Maven Central is reachable, then rerun"
  fi
  compgen -G "$tmp/libs/kafka_2.13-$version.jar" >/dev/null ||
    die "mvn ran but $tmp/libs has no kafka_2.13-$version.jar"
  rm -rf "$dir/libs"
  mkdir -p "$dir"
  mv "$tmp/libs" "$dir/libs"
  mv "$tmp/pom.xml" "$dir/pom.xml"
  rm -rf "$tmp"
  # Written last: a half-finished install is redone.
  date -u +%FT%TZ >"$dir/installed"
  local jars=("$dir"/libs/*.jar)
  echo "kafka: installed ${#jars[@]} jars ($(du -sh "$dir/libs" | cut -f1)) into $dir/libs" >&2
}

# The pid in the pid file, if that process is our broker (not a reused pid).
broker_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $data/server.properties" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Answers metadata requests, not just accepting connections.
# (The admin client retries for a minute; a broker that is up answers in ~2 s.)
answers() {
  printf "request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n" >"$data/answers.properties"
  kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
    --command-config "$data/answers.properties" --list >/dev/null 2>&1
}

write_config() {
  cat >"$data/server.properties" <<EOF
# Written by scripts/kafka.sh start (rewritten at every start).
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data/logs
num.partitions=4
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# After a kill -9 the restarted broker waits for its old registration to
# expire: 4 s instead of 9 (broker and controller share one JVM, so a pause
# delays both alike).
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
EOF
  cat >"$data/log4j2.properties" <<'EOF'
# The broker's log: stdout, which scripts/kafka.sh start sends to broker.log.
status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = warn
EOF
}

# The errors first: a failed start ends in a long stack trace.
fail_start() {
  echo "kafka: $1; from $log:" >&2
  { grep -E '^\[[^]]*\] (ERROR|FATAL) ' "$log" | tail -n 3
    echo ...
    tail -n 12 "$log"; } 2>/dev/null | sed 's/^/  /' >&2 || true
  exit 1
}

cmd_start() {
  cmd_install
  need_java
  mkdir -p "$data"
  # One start or stop at a time per data dir (tests may start it in parallel).
  exec 9>"$data/lock"
  flock 9
  local pid
  if pid=$(broker_pid); then
    if port_open "$port" && answers; then
      echo "kafka: already running on $bootstrap (pid $pid)" >&2
      return 0
    fi
    # Its JVM is up but not answering yet (started just now): wait below.
  else
    rm -f "$pidfile"
    if port_open "$port" || port_open "$controller_port"; then
      die "port $port or $controller_port is taken by another process: stop it, or set WEIR_KAFKA_PORT to a free port"
    fi
    write_config
    if [ ! -f "$data/logs/meta.properties" ]; then
      local id
      id=$(kafka_java kafka.tools.StorageTool random-uuid) || die "kafka.tools.StorageTool random-uuid failed (above)"
      kafka_java kafka.tools.StorageTool format --standalone -t "$id" \
        -c "$data/server.properties" >"$data/format.log" 2>&1 ||
        { cat "$data/format.log" >&2; die "formatting $data/logs failed (above)"; }
    fi
    [ -f "$log" ] && mv "$log" "$log.1"
    # Its own session, so a Ctrl-C in the shell that started it does not stop
    # it; fd 9 closed, so it does not hold the lock.
    # shellcheck disable=SC2016 # $$ and $@ are the child's
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" \
      java -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
      -Djava.awt.headless=true -Dlog4j2.configurationFile="$data/log4j2.properties" \
      -cp "$libs/*" kafka.Kafka "$data/server.properties" \
      </dev/null >"$log" 2>&1 9>&- &
    echo "kafka: starting Apache Kafka on $bootstrap (data and logs in $data)" >&2
  fi
  local timeout="${WEIR_KAFKA_START_TIMEOUT:-60}" start=$SECONDS
  while :; do
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
      fail_start "not answering on $bootstrap after ${timeout} s (still running: stop it with scripts/kafka.sh stop)"
    fi
    # Our child's pid, read as such: while it execs java, its cmdline can
    # read empty for a moment, which broker_pid would take for another process.
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -z "$pid" ]; then
      sleep 0.1 # not written yet
      continue
    fi
    [ -d "/proc/$pid" ] || fail_start "the broker exited while starting (if its data is broken, scripts/kafka.sh reset starts a fresh cluster)"
    if port_open "$port" && answers; then
      break
    fi
    sleep 0.5
  done
  echo "kafka: running on $bootstrap (pid $pid, ready in $((SECONDS - start)) s)" >&2
}

cmd_stop() {
  if [ ! -d "$data" ]; then
    echo "kafka: not running on $bootstrap" >&2
    return 0
  fi
  exec 9>"$data/lock"
  flock 9
  local pid
  if ! pid=$(broker_pid); then
    rm -f "$pidfile"
    echo "kafka: not running on $bootstrap" >&2
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 300; i++)); do
    [ -d "/proc/$pid" ] || break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ]; then
    echo "kafka: pid $pid did not stop within 30 s of SIGTERM: killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    while [ -d "/proc/$pid" ]; do sleep 0.1; done
  fi
  rm -f "$pidfile"
  echo "kafka: stopped (was pid $pid)" >&2
}

cmd_status() {
  local pid
  if pid=$(broker_pid) && port_open "$port"; then
    echo "kafka: running on $bootstrap (pid $pid, data in $data)"
    return 0
  fi
  if [ -n "${pid:-}" ]; then
    echo "kafka: starting, not yet accepting on $bootstrap (pid $pid)"
  else
    echo "kafka: not running on $bootstrap"
  fi
  return 1
}

cmd_reset() {
  cmd_stop
  case "$data" in
    '' | / | "$HOME" | "$cache") die "refusing to delete WEIR_KAFKA_DATA=$data: point it at a directory of its own" ;;
  esac
  rm -rf "$data"
  echo "kafka: deleted $data; the next start is a fresh cluster" >&2
}

cmd_topics() {
  if ! broker_pid >/dev/null || ! port_open "$port"; then
    die "not running on $bootstrap: run scripts/kafka.sh start first"
  fi
  local specs=("$@")
  if [ ${#specs[@]} -eq 0 ]; then
    local job kind
    for job in fraud metrics iot; do
      for kind in input output dead-letters; do
        specs+=("weir-$job-$kind:4")
      done
    done
  fi
  # All checked before any is created.
  local spec name parts names=() counts=()
  for spec in "${specs[@]}"; do
    name="${spec%%:*}"
    parts=4
    [ "$name" = "$spec" ] || parts="${spec#*:}"
    case "$parts" in
      '' | *[!0-9]* | 0*) die "topic $spec: the partitions after ':' must be a positive number" ;;
    esac
    [[ "$name" =~ ^[A-Za-z0-9._-]{1,249}$ ]] ||
      die "topic '$name': a Kafka topic name is 1 to 249 of A-Z a-z 0-9 . _ -"
    names+=("$name")
    counts+=("$parts")
  done
  local existing i
  existing=$(kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --list) ||
    die "could not list the topics on $bootstrap"
  for i in "${!names[@]}"; do
    name="${names[$i]}"
    parts="${counts[$i]}"
    if grep -qxF "$name" <<<"$existing"; then
      echo "kafka: topic $name exists" >&2
      continue
    fi
    kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
      --create --if-not-exists --topic "$name" --partitions "$parts" --replication-factor 1 >/dev/null
    echo "kafka: created topic $name ($parts partitions)" >&2
  done
}

cmd_tool() {
  [ $# -gt 0 ] || die "tool needs a class, e.g. scripts/kafka.sh tool org.apache.kafka.tools.TopicCommand --bootstrap-server $bootstrap --list"
  cmd_install
  need_java
  kafka_java --full-jit "$@"
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

sub="${1:-help}"
[ $# -eq 0 ] || shift
case "$sub" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  topics) cmd_topics "$@" ;;
  tool) cmd_tool "$@" ;;
  help | -h | --help) usage ;;
  *)
    usage >&2
    die "unknown command '$sub'"
    ;;
esac
