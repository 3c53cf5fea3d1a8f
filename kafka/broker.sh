#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, combined broker+controller) on 127.0.0.1.
#
#   kafka/broker.sh jars     fetch the broker jars from Maven Central into $SANDAN_KAFKA_HOME/lib
#   kafka/broker.sh start    format storage (first time) and start; waits until the broker answers
#   kafka/broker.sh stop     stop it cleanly (SIGTERM, then wait); harmless if it is not running
#   kafka/broker.sh status   exit 0 if it is running and answering
#
# SANDAN_KAFKA_PORT (default 9092) picks the client port; the controller listens on the next port.
# Every run lives in $SANDAN_KAFKA_HOME/run-<port>/ (data, logs, pid), so brokers on
# different ports never collide. Starting a running broker again does nothing.
#
# For more listeners (the tests' SASL_SSL broker, tests/integration/kafka.py):
# SANDAN_KAFKA_EXTRA_CONFIG names a file of broker properties appended to the ones written here
# (a later key wins, e.g. listeners), and SANDAN_KAFKA_FORMAT_ARGS holds more arguments for
# formatting a new broker's storage, split on spaces without quoting, e.g.
# --add-scram SCRAM-SHA-256=[name=u,password=p].
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
home=${SANDAN_KAFKA_HOME:-$here/../.cache/kafka}
mkdir -p "$home"
home=$(cd "$home" && pwd)
port=${SANDAN_KAFKA_PORT:-9092}
controller_port=$((port + 1))
run="$home/run-$port"
pidfile="$run/broker.pid"
lib="$home/lib"

die() { echo "kafka/broker.sh: $*" >&2; exit 1; }

answers() { # the port accepts connections
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

running() {
    [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

jars() {
    if compgen -G "$lib/kafka_2.13-*.jar" >/dev/null; then
        return
    fi
    echo "fetching the Kafka broker jars from Maven Central into $lib"
    mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$lib.partial"
    rm -rf "$lib" && mv "$lib.partial" "$lib"
}

write_config() {
    cat >"$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$run/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=12
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
group.initial.rebalance.delay.ms=0
transaction.abort.timed.out.transaction.cleanup.interval.ms=5000
log.flush.interval.messages=9223372036854775807
delete.topic.enable=true
message.max.bytes=8388608
PROPS
    if [[ -n ${SANDAN_KAFKA_EXTRA_CONFIG:-} ]]; then
        cat "$SANDAN_KAFKA_EXTRA_CONFIG" >>"$run/server.properties"
    fi
}

start() {
    if running; then
        echo "broker already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
        return
    fi
    jars
    if answers; then
        die "port $port is taken by another process; set SANDAN_KAFKA_PORT"
    fi
    mkdir -p "$run/logs"
    write_config
    local cp="$lib/*"
    if [[ ! -f $run/data/meta.properties ]]; then
        local -a format_args
        read -r -a format_args <<<"${SANDAN_KAFKA_FORMAT_ARGS:-}"
        java -cp "$cp" kafka.tools.StorageTool format -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid)" \
            -c "$run/server.properties" --ignore-formatted "${format_args[@]}" >"$run/logs/format.log" 2>&1 \
            || { cat "$run/logs/format.log" >&2; die "formatting the storage failed"; }
    fi
    nohup java -Xms256m -Xmx${SANDAN_KAFKA_HEAP:-1g} -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -Dkafka.logs.dir="$run/logs" -Dlog4j2.configurationFile="$here/log4j2.yaml" \
        -cp "$cp" kafka.Kafka "$run/server.properties" >"$run/logs/stdout.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 600); do
        if ! running; then
            tail -n 30 "$run/logs/stdout.log" >&2
            die "the broker exited during start (logs in $run/logs)"
        fi
        if answers && grep -q "Kafka Server started" "$run/logs/server.log" 2>/dev/null; then
            echo "broker running on 127.0.0.1:$port (pid $(cat "$pidfile"), data in $run)"
            return
        fi
        sleep 0.1
    done
    stop
    die "the broker did not answer within 60 s (logs in $run/logs)"
}

stop() {
    if ! running; then
        rm -f "$pidfile"
        return
    fi
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "broker on port $port stopped"; return; }
        sleep 0.1
    done
    echo "broker on port $port did not stop in 30 s; killing it" >&2
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

status() {
    running && answers
}

case "${1:-}" in
    jars) jars ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: broker.sh jars|start|stop|status" ;;
esac
