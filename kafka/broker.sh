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
#
# A local cluster: SANDAN_KAFKA_NODES=3 (default 1) runs three KRaft nodes, each a combined
# broker+controller and one of the quorum's three voters, node n (1..3) on client port
# SANDAN_KAFKA_PORT + 2(n-1), its controller on the port after, in run-<its client port>/ with
# its own pid file; all of them in one cluster (one cluster id). The topics' defaults become
# default.replication.factor=3, min.insync.replicas=2, and the same for the consumer offsets
# (replication 3) and transaction state (replication 3, min ISR 2). Each command then takes a
# node number, or none for every node:
#
#   kafka/broker.sh start [n]   start every node (together: the quorum needs two), or node n
#   kafka/broker.sh stop [n]    stop every node, or node n (SIGTERM: a controlled shutdown)
#   kafka/broker.sh kill [n]    SIGKILL every node, or node n, by its pid file
#   kafka/broker.sh status [n]  exit 0 if every node (node n) is running and answering
#
# e.g. SANDAN_KAFKA_NODES=3 SANDAN_KAFKA_PORT=19092 kafka/broker.sh kill 2; the clients'
# bootstrap servers are then 127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096. A node's heap
# is SANDAN_KAFKA_HEAP (default 1g for one node, 512m each in a cluster; at least 256m).
# kill works on a single broker too. Transaction partition verification (KIP-890) stays on.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
home=${SANDAN_KAFKA_HOME:-$here/../.cache/kafka}
mkdir -p "$home"
home=$(cd "$home" && pwd)
base_port=${SANDAN_KAFKA_PORT:-9092}
nodes=${SANDAN_KAFKA_NODES:-1}
lib="$home/lib"

die() { echo "kafka/broker.sh: $*" >&2; exit 1; }

[[ $nodes =~ ^[1-9][0-9]?$ ]] || die "SANDAN_KAFKA_NODES must be a number of nodes, got '$nodes'"
replicas=$((nodes < 3 ? nodes : 3))
min_isr=$((replicas > 1 ? replicas - 1 : 1))
if ((nodes == 1)); then
    heap=${SANDAN_KAFKA_HEAP:-1g}
    label=broker
else
    heap=${SANDAN_KAFKA_HEAP:-512m}
fi
voters=""
for ((n = 1; n <= nodes; n++)); do
    voters+="${voters:+,}$n@127.0.0.1:$((base_port + 2 * (n - 1) + 1))"
done

use_node() { # node $1's id, ports, run dir and pid file
    node=$1
    port=$((base_port + 2 * (node - 1)))
    controller_port=$((port + 1))
    run="$home/run-$port"
    pidfile="$run/broker.pid"
    if ((nodes > 1)); then
        label="broker node $node"
    fi
}
use_node 1

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
node.id=$node
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$run/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=12
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
min.insync.replicas=$min_isr
default.replication.factor=$replicas
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

cluster_id="" # one for every node of the cluster: a formatted node's, else a new one
find_cluster_id() {
    [[ -n $cluster_id ]] && return
    local n meta
    for ((n = 1; n <= nodes; n++)); do
        meta="$home/run-$((base_port + 2 * (n - 1)))/data/meta.properties"
        if [[ -f $meta ]]; then
            cluster_id=$(sed -n 's/^cluster.id=//p' "$meta")
            [[ -n $cluster_id ]] && return
        fi
    done
    cluster_id=$(java -cp "$lib/*" kafka.tools.StorageTool random-uuid)
}

started_lines() { # how often this node's log says it started (the log outlives restarts)
    local count
    count=$(grep -c "Kafka Server started" "$run/logs/server.log" 2>/dev/null) || true
    echo "${count:-0}"
}

launch() { # start this node's JVM, formatting its storage the first time; do not wait
    if answers; then
        die "port $port is taken by another process; set SANDAN_KAFKA_PORT"
    fi
    mkdir -p "$run/logs"
    write_config
    local cp="$lib/*"
    if [[ ! -f $run/data/meta.properties ]]; then
        local -a format_args
        read -r -a format_args <<<"${SANDAN_KAFKA_FORMAT_ARGS:-}"
        find_cluster_id
        java -cp "$cp" kafka.tools.StorageTool format -t "$cluster_id" \
            -c "$run/server.properties" --ignore-formatted "${format_args[@]}" >"$run/logs/format.log" 2>&1 \
            || { cat "$run/logs/format.log" >&2; die "formatting the storage failed"; }
    fi
    nohup java -Xms256m -Xmx"$heap" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -Dkafka.logs.dir="$run/logs" -Dlog4j2.configurationFile="$here/log4j2.yaml" \
        -cp "$cp" kafka.Kafka "$run/server.properties" >"$run/logs/stdout.log" 2>&1 &
    echo $! >"$pidfile"
}

await_start() { # until this node answers and its log says it started more than $1 times
    local before=$1
    for _ in $(seq 1 600); do
        if ! running; then
            tail -n 30 "$run/logs/stdout.log" >&2
            die "the $label exited during start (logs in $run/logs)"
        fi
        if answers && (($(started_lines) > before)); then
            echo "$label running on 127.0.0.1:$port (pid $(cat "$pidfile"), data in $run)"
            return
        fi
        sleep 0.1
    done
    stop
    die "the $label did not answer within 60 s (logs in $run/logs)"
}

start() { # the chosen nodes together (a new cluster's quorum needs most of them at once)
    jars
    local n
    local -A before=()
    for n in "${chosen[@]}"; do
        use_node "$n"
        if running; then
            echo "$label already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"
            continue
        fi
        before[$n]=$(started_lines)
        launch
    done
    for n in "${chosen[@]}"; do
        [[ -n ${before[$n]:-} ]] || continue
        use_node "$n"
        await_start "${before[$n]}"
    done
}

stop() {
    if ! running; then
        rm -f "$pidfile"
        return
    fi
    local pid
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "$label on port $port stopped"; return; }
        sleep 0.1
    done
    echo "$label on port $port did not stop in 30 s; killing it" >&2
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

stop_chosen() { # SIGTERM to every chosen node at once (one quorum loss), then wait for each
    local n
    local -a up=()
    for n in "${chosen[@]}"; do
        use_node "$n"
        if running; then
            up+=("$n")
            ((${#chosen[@]} == 1)) || kill "$(cat "$pidfile")" 2>/dev/null || true
        fi
    done
    for n in "${up[@]}"; do
        use_node "$n"
        if running; then
            stop
        else
            rm -f "$pidfile"
            echo "$label on port $port stopped"
        fi
    done
}

kill_chosen() { # SIGKILL, by the pid files (only the processes this script started)
    local n pid
    for n in "${chosen[@]}"; do
        use_node "$n"
        if running; then
            pid=$(cat "$pidfile")
            kill -9 "$pid"
            for _ in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            echo "$label on port $port killed"
        fi
        rm -f "$pidfile"
    done
}

status() {
    local n
    for n in "${chosen[@]}"; do
        use_node "$n"
        running && answers || return 1
    done
}

if [[ -n ${2:-} ]]; then
    [[ $2 =~ ^[0-9]+$ ]] && (($2 >= 1 && $2 <= nodes)) || die "no node '$2' (nodes 1-$nodes)"
    chosen=("$2")
else
    mapfile -t chosen < <(seq 1 "$nodes")
fi

case "${1:-}" in
    jars) jars ;;
    start) start ;;
    stop) stop_chosen ;;
    kill) kill_chosen ;;
    status) status ;;
    *) die "usage: broker.sh jars|start|stop|kill|status [node]" ;;
esac
